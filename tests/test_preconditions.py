"""Specification of proxy.preconditions: S3's conditional GET/HEAD, in RFC 9110 §13.2.2 order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.preconditions import (
    Decision,
    Outcome,
    Preconditions,
    evaluate,
    format_http_date,
    parse_http_date,
    upstream_decides_range,
)

ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
OTHER = '"0cc175b9c0f1b6a831c399e269772661"'
MODIFIED = 1_445_412_480  # Wed, 21 Oct 2015 07:28:00 GMT

PROCEED = Decision(Outcome.PROCEED, None)
NOT_MODIFIED = Decision(Outcome.NOT_MODIFIED, None)
IF_MATCH_FAILED = Decision(Outcome.PRECONDITION_FAILED, "If-Match")
IF_UNMODIFIED_SINCE_FAILED = Decision(Outcome.PRECONDITION_FAILED, "If-Unmodified-Since")

# Each header in a state where its condition holds ("T") or fails ("F"), in the sense of
# RFC 9110 §13.1: a condition "holds" when it lets the method proceed.
_HEADERS = ("if-match", "if-unmodified-since", "if-none-match", "if-modified-since")
_VALUES = {
    "if-match": {"T": ETAG, "F": OTHER},
    "if-unmodified-since": {"T": format_http_date(MODIFIED), "F": format_http_date(MODIFIED - 1)},
    "if-none-match": {"T": OTHER, "F": ETAG},
    "if-modified-since": {"T": format_http_date(MODIFIED - 1), "F": format_http_date(MODIFIED)},
}


def _request(states: str) -> dict[str, str]:
    """Headers for a code such as "TF--": If-Match, If-Unmodified-Since, If-None-Match,
    If-Modified-Since each true, false or absent."""
    return {h: _VALUES[h][s] for h, s in zip(_HEADERS, states, strict=True) if s != "-"}


def _describe(states: str) -> str:
    words = {"T": "true", "F": "false"}
    pairs = zip(_HEADERS, states, strict=True)
    return " and ".join(f"{h} {words[s]}" for h, s in pairs if s != "-") or "no condition"


# Every header alone, and every pair of headers, in each of its states; then a few of all four.
_COMBINATIONS = [
    ("----", PROCEED),
    ("T---", PROCEED),
    ("F---", IF_MATCH_FAILED),
    ("-T--", PROCEED),
    ("-F--", IF_UNMODIFIED_SINCE_FAILED),
    ("--T-", PROCEED),
    ("--F-", NOT_MODIFIED),
    ("---T", PROCEED),
    ("---F", NOT_MODIFIED),
    # If-Match with If-Unmodified-Since: a true If-Match overrides a false If-Unmodified-Since
    # (S3 GetObject docs: "S3 returns 200 OK and the data requested").
    ("TT--", PROCEED),
    ("TF--", PROCEED),
    ("FT--", IF_MATCH_FAILED),
    ("FF--", IF_MATCH_FAILED),
    ("T-T-", PROCEED),
    ("T-F-", NOT_MODIFIED),
    ("F-T-", IF_MATCH_FAILED),
    ("F-F-", IF_MATCH_FAILED),
    ("T--T", PROCEED),
    ("T--F", NOT_MODIFIED),
    ("F--T", IF_MATCH_FAILED),
    ("F--F", IF_MATCH_FAILED),
    ("-TT-", PROCEED),
    ("-TF-", NOT_MODIFIED),
    ("-FT-", IF_UNMODIFIED_SINCE_FAILED),
    ("-FF-", IF_UNMODIFIED_SINCE_FAILED),
    ("-T-T", PROCEED),
    ("-T-F", NOT_MODIFIED),
    ("-F-T", IF_UNMODIFIED_SINCE_FAILED),
    ("-F-F", IF_UNMODIFIED_SINCE_FAILED),
    # If-None-Match with If-Modified-Since: If-None-Match alone decides (S3 GetObject docs:
    # If-None-Match false and If-Modified-Since true is 304; true with false is 200).
    ("--TT", PROCEED),
    ("--TF", PROCEED),
    ("--FT", NOT_MODIFIED),
    ("--FF", NOT_MODIFIED),
    ("TTTT", PROCEED),
    ("FFFF", IF_MATCH_FAILED),
    ("TFTF", PROCEED),
    ("TFFT", NOT_MODIFIED),
    ("-FFF", IF_UNMODIFIED_SINCE_FAILED),
]


@pytest.mark.parametrize(
    ("states", "expected"),
    [pytest.param(s, e, id=f"{_describe(s)} gives {e.outcome.name}") for s, e in _COMBINATIONS],
)
def test_conditions_decide_in_rfc_9110_order(states: str, expected: Decision) -> None:
    pre = Preconditions.from_headers(_request(states))
    assert evaluate(pre, ETAG, MODIFIED) == expected


@pytest.mark.parametrize(
    ("sent", "object_etag", "matches"),
    [
        pytest.param('"abc"', '"abc"', True, id="a quoted tag matches"),
        pytest.param("abc", '"abc"', True, id="an unquoted tag matches"),
        pytest.param('W/"abc"', '"abc"', True, id="a weak tag matches"),
        pytest.param("W/abc", '"abc"', True, id="a weak unquoted tag matches"),
        pytest.param('  "abc"  ', '"abc"', True, id="a padded tag matches"),
        pytest.param('"abc"', "abc", True, id="an unquoted object etag matches"),
        pytest.param('"x", "abc"', '"abc"', True, id="a list member matches"),
        pytest.param('"x","abc"', '"abc"', True, id="a list without spaces matches"),
        pytest.param('"x" , W/"abc" ,', '"abc"', True, id="a loose list matches"),
        pytest.param("*", '"abc"', True, id="a star matches any object"),
        pytest.param(" * ", '"abc"', True, id="a padded star matches any object"),
        pytest.param('"abc-12"', '"abc-12"', True, id="a multipart etag matches"),
        pytest.param('"x", "y"', '"abc"', False, id="a list without the tag does not match"),
        pytest.param('"ABC"', '"abc"', False, id="tags are case sensitive"),
        pytest.param('"ab"', '"abc"', False, id="a prefix does not match"),
        pytest.param('"abc"', '"abc-12"', False, id="a part of a multipart etag does not match"),
        pytest.param('""', '"abc"', False, id="an empty tag does not match"),
    ],
)
def test_entity_tags_compare_after_normalising(sent: str, object_etag: str, matches: bool) -> None:
    if_match = evaluate(Preconditions.from_headers({"if-match": sent}), object_etag, MODIFIED)
    if_none_match = evaluate(
        Preconditions.from_headers({"if-none-match": sent}), object_etag, MODIFIED
    )
    assert if_match == (PROCEED if matches else IF_MATCH_FAILED)
    assert if_none_match == (NOT_MODIFIED if matches else PROCEED)


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        pytest.param('"abc"', ("abc",), id="a quoted tag is unquoted"),
        pytest.param("*", ("*",), id="a star is the wildcard"),
        pytest.param('"a", W/"b", c', ("a", "b", "c"), id="every member of a list is normalised"),
        pytest.param('"a",,"b"', ("a", "b"), id="empty list members are dropped"),
        pytest.param("", None, id="an empty header is no condition"),
        pytest.param("  ", None, id="a blank header is no condition"),
    ],
)
def test_tag_headers_are_read_as_normalised_lists(value: str, tags: tuple[str, ...] | None) -> None:
    pre = Preconditions.from_headers({"if-match": value, "if-none-match": value})
    assert pre.if_match == tags
    assert pre.if_none_match == tags


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="an empty value"),
        pytest.param("1445412480", id="epoch seconds"),
        pytest.param("2015-10-21T07:28:00Z", id="iso 8601"),
        pytest.param("Wed, 32 Oct 2015 07:28:00 GMT", id="a day out of range"),
        pytest.param("Wed, 21 Oct 2015 25:28:00 GMT", id="an hour out of range"),
        pytest.param("Wed, 21 Oct 99999 07:28:00 GMT", id="a year out of range"),
        pytest.param(
            "Wed, 21 Oct 2015 07:28:00 GMT, Thu, 22 Oct 2015 07:28:00 GMT", id="two dates"
        ),
    ],
)
def test_an_invalid_date_is_ignored(value: str) -> None:
    # Each would fail if it were read as a date: the object was modified at MODIFIED.
    pre = Preconditions.from_headers({"if-modified-since": value, "if-unmodified-since": value})
    assert parse_http_date(value) is None
    assert not pre.present
    assert evaluate(pre, ETAG, MODIFIED) == PROCEED


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"if-modified-since": MODIFIED}, NOT_MODIFIED, id="equal ims is 304"),
        pytest.param({"if-modified-since": MODIFIED - 1}, PROCEED, id="earlier ims is 200"),
        pytest.param({"if-unmodified-since": MODIFIED}, PROCEED, id="equal ius is 200"),
        pytest.param(
            {"if-unmodified-since": MODIFIED - 1}, IF_UNMODIFIED_SINCE_FAILED, id="earlier ius 412"
        ),
    ],
)
def test_dates_compare_at_whole_seconds_with_equal_meaning_unmodified(
    headers: dict[str, int], expected: Decision
) -> None:
    pre = Preconditions.from_headers({k: format_http_date(v) for k, v in headers.items()})
    assert evaluate(pre, ETAG, MODIFIED) == expected


@pytest.mark.parametrize("states", ["-F--", "---F", "-F-F"])
def test_date_conditions_are_ignored_without_a_last_modified(states: str) -> None:
    assert evaluate(Preconditions.from_headers(_request(states)), ETAG, None) == PROCEED


@pytest.mark.parametrize(
    ("headers", "present"),
    [
        pytest.param({}, False, id="no headers are no condition"),
        pytest.param({"range": "bytes=0-1"}, False, id="other headers are no condition"),
        pytest.param({"if-match": "*"}, True, id="if-match is a condition"),
        pytest.param({"if-none-match": ETAG}, True, id="if-none-match is a condition"),
        pytest.param({"if-modified-since": _VALUES["if-modified-since"]["T"]}, True, id="ims"),
        pytest.param({"if-unmodified-since": _VALUES["if-unmodified-since"]["T"]}, True, id="ius"),
    ],
)
def test_present_says_whether_any_condition_applies(headers: dict[str, str], present: bool) -> None:
    assert Preconditions.from_headers(headers).present is present


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", id="imf fixdate"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", id="rfc 850"),
        pytest.param("Sun Nov  6 08:49:37 1994", id="asctime"),
    ],
)
def test_all_three_http_date_forms_parse(value: str) -> None:
    # RFC 9110 §5.6.7 gives these three spellings of one instant.
    assert parse_http_date(value) == 784_111_777


def test_dates_are_formatted_as_imf_fixdate() -> None:
    assert format_http_date(MODIFIED) == "Wed, 21 Oct 2015 07:28:00 GMT"


@given(st.integers(min_value=0, max_value=253_402_300_799))  # up to 9999-12-31T23:59:59Z
def test_a_formatted_date_parses_back_to_the_same_second(epoch: int) -> None:
    assert parse_http_date(format_http_date(epoch)) == epoch


@given(st.text(max_size=40))
def test_parsing_any_text_never_raises(value: str) -> None:
    parse_http_date(value)


@pytest.mark.parametrize(
    ("headers", "upstream_decides"),
    [
        ({"range": "bytes=0-9", "if-range": ETAG}, True),
        ({"range": "bytes=-5", "if-range": "Wed, 21 Oct 2015 07:28:00 GMT"}, True),
        ({"range": "bytes=0-9", "if-match": ETAG}, False),  # judged by evaluate(), as S3 does
        ({"if-range": ETAG}, False),  # RFC 9110 §13.1.5: without a Range it means nothing
        ({}, False),
    ],
)
def test_only_a_range_made_conditional_by_if_range_is_left_to_the_upstream(
    headers: dict[str, str], upstream_decides: bool
) -> None:
    assert upstream_decides_range(headers) is upstream_decides


def test_if_range_is_no_precondition_of_its_own() -> None:
    """S3's GetObject defines no If-Range: it never makes evaluate() answer 304 or 412."""
    pre = Preconditions.from_headers({"if-range": OTHER})
    assert not pre.present
    assert evaluate(pre, ETAG, MODIFIED) == PROCEED
