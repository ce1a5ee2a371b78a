"""Specification of proxy.ranges: how S3 GetObject answers a Range header, as tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.ranges import ByteRange, RangeNotSatisfiable, parse_range

HUGE = "9" * 5000  # more digits than int() converts by default (sys.get_int_max_str_digits)


@pytest.mark.parametrize(
    ("header", "size", "start", "end"),
    [
        pytest.param("bytes=0-99", 1000, 0, 99, id="a closed range is served as asked"),
        pytest.param("bytes=0-0", 1000, 0, 0, id="a one byte range is served"),
        pytest.param("bytes=999-999", 1000, 999, 999, id="the last byte alone is served"),
        pytest.param("bytes=900-5000", 1000, 900, 999, id="a range past the end is clamped"),
        pytest.param("bytes=0-999", 1000, 0, 999, id="a range of the whole object is a 206"),
        pytest.param("bytes=500-", 1000, 500, 999, id="an open range runs to the end"),
        pytest.param("bytes=0-", 1000, 0, 999, id="an open range from zero is the whole object"),
        pytest.param("bytes=-100", 1000, 900, 999, id="a suffix range is the last n bytes"),
        pytest.param("bytes=-1", 1000, 999, 999, id="a one byte suffix is the last byte"),
        pytest.param("bytes=-1000", 1000, 0, 999, id="a suffix of exactly the size is whole"),
        pytest.param("bytes=-5000", 1000, 0, 999, id="a suffix longer than the object is whole"),
        pytest.param("bytes=-1", 1, 0, 0, id="a suffix on a one byte object is that byte"),
        pytest.param("bytes=0-0", 1, 0, 0, id="the only byte of a one byte object is served"),
        pytest.param("Bytes=0-9", 1000, 0, 9, id="the unit is case insensitive"),
        pytest.param("BYTES=0-9", 1000, 0, 9, id="an upper case unit is accepted"),
        pytest.param("  bytes=0-9\t", 1000, 0, 9, id="whitespace around the value is tolerated"),
        pytest.param("bytes=007-010", 1000, 7, 10, id="leading zeros are decimal, not octal"),
        pytest.param(f"bytes=0-{HUGE}", 1000, 0, 999, id="a huge end is clamped"),
        pytest.param(f"bytes=-{HUGE}", 1000, 0, 999, id="a huge suffix is the whole object"),
        pytest.param(
            f"bytes=0-{2**64}", 2**63, 0, 2**63 - 1, id="numbers past 64 bits do not overflow"
        ),
        pytest.param(
            f"bytes={2**64}-", 2**65, 2**64, 2**65 - 1, id="objects past 64 bits are addressable"
        ),
    ],
)
def test_satisfiable_range_is_served_as_206(header: str, size: int, start: int, end: int) -> None:
    assert parse_range(header, size) == ByteRange(start, end)


@pytest.mark.parametrize(
    ("header", "size"),
    [
        pytest.param(None, 1000, id="no range header serves the whole object"),
        pytest.param("bytes=0-1,5-6", 1000, id="a multi range request is ignored"),
        pytest.param("bytes=0-1, 5-6", 1000, id="a spaced multi range request is ignored"),
        pytest.param("bytes=-5,0-1", 1000, id="a multi range led by a suffix is ignored"),
        pytest.param("bytes=0-1,", 1000, id="a trailing comma is ignored"),
        pytest.param("items=0-9", 1000, id="an unknown unit is ignored"),
        pytest.param("bytes 0-9", 1000, id="a missing equals sign is ignored"),
        pytest.param("bytes=09", 1000, id="a missing dash is ignored"),
        pytest.param("bytes=", 1000, id="a missing range set is ignored"),
        pytest.param("bytes=-", 1000, id="a lone dash is ignored"),
        pytest.param("bytes=a-b", 1000, id="non digits are ignored"),
        pytest.param("bytes=0x10-0x20", 1000, id="hexadecimal is ignored"),
        pytest.param("bytes=--5", 1000, id="a negative suffix is ignored"),
        pytest.param("bytes=-5-10", 1000, id="a negative start is ignored"),
        pytest.param("bytes=5--10", 1000, id="a negative end is ignored"),
        pytest.param("bytes=1 0-20", 1000, id="a space inside a number is ignored"),
        pytest.param("bytes=0 -9", 1000, id="a space before the dash is ignored"),
        pytest.param("bytes=1_0-20", 1000, id="an underscore inside a number is ignored"),
        pytest.param("bytes=+1-20", 1000, id="a plus sign is ignored"),
        pytest.param("bytes=\u0661-\u0662", 1000, id="non ascii digits are ignored"),
        pytest.param("", 1000, id="an empty header is ignored"),
        pytest.param("   ", 1000, id="a blank header is ignored"),
        pytest.param("garbage", 1000, id="garbage is ignored"),
        pytest.param("bytes=10-5", 1000, id="a range ending before it starts is ignored"),
        pytest.param("bytes=2000-1500", 1000, id="a reversed range past the end is ignored"),
        pytest.param(f"bytes={HUGE}-5", 1000, id="a huge reversed range is ignored"),
        pytest.param("bytes=1-0", 0, id="a reversed range on an empty object is ignored"),
        pytest.param("bytes=-1", 0, id="a suffix on an empty object serves it whole"),
        pytest.param(f"bytes=-{HUGE}", 0, id="a huge suffix on an empty object serves it whole"),
        pytest.param("bytes=0-1,5-6", 0, id="a multi range on an empty object is ignored"),
    ],
)
def test_ignored_range_serves_the_whole_object(header: str | None, size: int) -> None:
    assert parse_range(header, size) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        pytest.param("bytes=1000-", 1000, id="an open range starting at the size is 416"),
        pytest.param("bytes=1000-1000", 1000, id="a range starting at the size is 416"),
        pytest.param("bytes=5000-6000", 1000, id="a range wholly past the end is 416"),
        pytest.param(f"bytes={HUGE}-", 1000, id="a huge start is 416"),
        pytest.param(f"bytes={HUGE}-{HUGE}", 1000, id="a huge start and end are 416"),
        pytest.param("bytes=-0", 1000, id="a zero length suffix is 416"),
        pytest.param("bytes=-000", 1000, id="a zero length suffix with leading zeros is 416"),
        pytest.param("bytes=0-", 0, id="an open range on an empty object is 416"),
        pytest.param("bytes=0-0", 0, id="a first byte range on an empty object is 416"),
        pytest.param("bytes=0-100", 0, id="a closed range on an empty object is 416"),
        pytest.param("bytes=1-2", 0, id="a range past an empty object is 416"),
        pytest.param("bytes=-0", 0, id="a zero length suffix on an empty object is 416"),
    ],
)
def test_unsatisfiable_range_is_416(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_416_carries_the_request_and_size_for_the_error_body() -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(" bytes=2000-", 1000)
    assert caught.value.requested == " bytes=2000-"
    assert caught.value.size == 1000
    assert caught.value.content_range == "bytes */1000"


def test_content_range_names_both_ends_and_the_size() -> None:
    assert ByteRange(0, 99).content_range(1000) == "bytes 0-99/1000"


def test_length_counts_both_ends() -> None:
    assert ByteRange(0, 99).length == 100
    assert ByteRange(7, 7).length == 1


@pytest.mark.parametrize(("start", "end"), [(-1, 5), (5, 4), (-2, -1)])
def test_byte_range_refuses_an_empty_or_negative_span(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        ByteRange(start, end)


# Headers built from the grammar's pieces, with big numbers, plus arbitrary text.
_numbers = st.one_of(st.integers(0, 2**70).map(str), st.just(""), st.just(HUGE))
_headers = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", _numbers, _numbers),
    st.text(alphabet="bytesBYTES=-0123456789, ", max_size=20),
    st.text(max_size=20),
)
_sizes = st.one_of(st.integers(0, 3), st.integers(0, 2**70))


def _outcome(header: str, size: int) -> ByteRange | RangeNotSatisfiable | None:
    try:
        return parse_range(header, size)
    except RangeNotSatisfiable as error:
        return error


@given(_headers, _sizes)
def test_any_returned_range_lies_inside_the_object(header: str, size: int) -> None:
    outcome = _outcome(header, size)
    if isinstance(outcome, ByteRange):
        assert 0 <= outcome.start <= outcome.end < size


@given(_headers)
def test_no_range_is_ever_returned_for_an_empty_object(header: str) -> None:
    assert not isinstance(_outcome(header, 0), ByteRange)


@given(st.integers(0, 2**70), st.integers(0, 2**70), st.integers(1, 2**70))
def test_a_closed_range_is_the_request_clamped_to_the_object(a: int, b: int, size: int) -> None:
    outcome = _outcome(f"bytes={a}-{b}", size)
    if a > b:
        assert outcome is None
    elif a >= size:
        assert isinstance(outcome, RangeNotSatisfiable)
    else:
        assert outcome == ByteRange(a, min(b, size - 1))


@given(st.integers(1, 2**70), st.integers(1, 2**70))
def test_a_suffix_range_is_the_last_n_bytes_or_all(n: int, size: int) -> None:
    outcome = parse_range(f"bytes=-{n}", size)
    assert outcome is not None
    assert outcome.end == size - 1
    assert outcome.length == min(n, size)
