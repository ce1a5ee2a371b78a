"""Conditional GET/HEAD: evaluate a client's preconditions against an object, as S3 does.

The four headers are evaluated in the order of RFC 9110 §13.2.2, each one able to end the
evaluation; S3 documents the same order for GetObject and HeadObject:

    1. If-Match            false -> 412 (Condition If-Match)   true -> skip step 2
    2. If-Unmodified-Since false -> 412 (Condition If-Unmodified-Since)
    3. If-None-Match       false -> 304                        true -> skip step 4
    4. If-Modified-Since   false -> 304
    5. PROCEED; the caller applies Range afterwards (§13.2.2 step 6).

If-Range (§13.1.5, §13.2.2 step 5) is not evaluated here, nor anywhere in s3tier. AWS's
GetObject and HeadObject define no If-Range header (the S3 API model, which the API reference
and every SDK are generated from, lists If-Match, If-Modified-Since, If-None-Match,
If-Unmodified-Since and Range), moto serves the range whatever If-Range says, and at least one
user reports that S3 itself honours it. What S3 does with it is the upstream's to say: a Range
made conditional by If-Range bypasses the cache and is forwarded as sent
(`upstream_decides_range`), so the client gets exactly what the upstream answers. An If-Range
without a Range means nothing (§13.1.5) and is served from the cache like any GET.

The decision is a value; the caller renders it. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime


class Outcome(enum.Enum):
    """What the request handler does next."""

    PROCEED = enum.auto()  # serve the object (200 or, with a Range, 206)
    NOT_MODIFIED = enum.auto()  # 304, no body
    PRECONDITION_FAILED = enum.auto()  # 412 PreconditionFailed


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, and for a 412 the header that failed (S3's ``<Condition>`` element)."""

    outcome: Outcome
    condition: str | None = None


_PROCEED = Decision(Outcome.PROCEED)
_NOT_MODIFIED = Decision(Outcome.NOT_MODIFIED)
_IF_MATCH_FAILED = Decision(Outcome.PRECONDITION_FAILED, "If-Match")
_IF_UNMODIFIED_SINCE_FAILED = Decision(Outcome.PRECONDITION_FAILED, "If-Unmodified-Since")


@dataclass(frozen=True, slots=True)
class Preconditions:
    """The conditional headers of one request: entity tags normalised, dates in epoch seconds.

    A tag list is None when its header is absent, and ``("*",)`` for the wildcard. A date is
    None when absent or unparsable: RFC 9110 §13.1.3 and §13.1.4 say to ignore an invalid date.
    """

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None
    if_modified_since: int | None = None
    if_unmodified_since: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Preconditions:
        """Read the four headers from a mapping with lower-case names."""
        return cls(
            if_match=_tag_list(headers.get("if-match")),
            if_none_match=_tag_list(headers.get("if-none-match")),
            if_modified_since=_optional_date(headers.get("if-modified-since")),
            if_unmodified_since=_optional_date(headers.get("if-unmodified-since")),
        )

    @property
    def present(self) -> bool:
        """Whether any condition applies, so the common request can skip evaluation."""
        return not (
            self.if_match is None
            and self.if_none_match is None
            and self.if_modified_since is None
            and self.if_unmodified_since is None
        )


def evaluate(pre: Preconditions, etag: str, last_modified: int | None) -> Decision:
    """Decide a GET or HEAD of an existing object with ``etag``, modified at ``last_modified``.

    ``last_modified`` is in epoch seconds; None means the object has none, and then the date
    conditions are ignored (RFC 9110 §13.1.3, §13.1.4).
    """
    if pre.if_match is not None:
        if not _matches(pre.if_match, etag):
            return _IF_MATCH_FAILED
    elif _modified_after(last_modified, pre.if_unmodified_since):
        # S3: If-Match true and If-Unmodified-Since false is 200, so this is only reached
        # without If-Match (RFC 9110 §13.2.2 step 2).
        return _IF_UNMODIFIED_SINCE_FAILED
    if pre.if_none_match is not None:
        # §13.1.2: for GET and HEAD a failed If-None-Match is 304, not 412. When it holds,
        # If-Modified-Since is not consulted (§13.2.2 step 4; S3 answers 200).
        return _NOT_MODIFIED if _matches(pre.if_none_match, etag) else _PROCEED
    if _not_modified_since(last_modified, pre.if_modified_since):
        return _NOT_MODIFIED
    return _PROCEED


def upstream_decides_range(headers: Mapping[str, str]) -> bool:
    """Whether a GET/HEAD carries a Range made conditional by If-Range, which only the
    upstream can answer as S3 does (see the module docstring)."""
    return "if-range" in headers and "range" in headers


def parse_http_date(value: str) -> int | None:
    """Epoch seconds of an HTTP-date (RFC 9110 §5.6.7), or None if it is not one.

    Accepts IMF-fixdate and the obsolete RFC 850 and asctime forms; a date without a zone
    (asctime) is GMT, as all HTTP-dates are.
    """
    if value.count(",") > 1:
        # Each form has at most one comma; more means several members (repeated header lines
        # joined), which RFC 9110 §13.1.3 and §13.1.4 say to ignore. The parser would not.
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def format_http_date(epoch: int) -> str:
    """The IMF-fixdate of ``epoch`` (RFC 9110 §5.6.7), e.g. ``Wed, 21 Oct 2015 07:28:00 GMT``."""
    return formatdate(epoch, usegmt=True)


def _normalise_etag(tag: str) -> str:
    """An entity tag reduced to its opaque part: no whitespace, ``W/`` prefix or quotes.

    S3 compares strongly, yet accepts tags sent unquoted or marked weak; reducing both the
    client's tags and the object's ETag the same way makes those compare equal.
    """
    tag = tag.strip()
    tag = tag.removeprefix("W/")
    if len(tag) >= 2 and tag.startswith('"') and tag.endswith('"'):
        tag = tag[1:-1]
    return tag


def _tag_list(value: str | None) -> tuple[str, ...] | None:
    """``If-Match``/``If-None-Match``: ``"*"`` or a comma-separated list (RFC 9110 §13.1.1-2)."""
    if value is None or not value.strip():
        return None  # an empty field carries no condition
    if value.strip() == "*":
        return ("*",)
    # S3 ETags are hex digits with an optional "-<parts>", never a comma, so a plain split
    # is exact for every tag that could match.
    return tuple(_normalise_etag(member) for member in value.split(",") if member.strip())


def _matches(tags: tuple[str, ...], etag: str) -> bool:
    # "*" matches any current representation (RFC 9110 §13.1.1-2); evaluate() is only ever
    # called for an object that exists.
    return "*" in tags or _normalise_etag(etag) in tags


# Both dates are whole seconds, the resolution of an HTTP-date (RFC 9110 §5.6.7), so an object
# written at 07:28:00.9 is not "modified since" 07:28:00. Either date unknown: no condition.


def _modified_after(last_modified: int | None, since: int | None) -> bool:
    return last_modified is not None and since is not None and last_modified > since


def _not_modified_since(last_modified: int | None, since: int | None) -> bool:
    return last_modified is not None and since is not None and last_modified <= since


def _optional_date(value: str | None) -> int | None:
    return None if value is None else parse_http_date(value)
