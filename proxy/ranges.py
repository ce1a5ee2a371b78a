"""Byte ranges: resolve a ``Range`` request header against an object size, as S3 GetObject does.

A pure function of ``(header, size)``, after ``starlette/responses.py``; the caller maps the
outcome to a response:

    parse_range(...) -> None              200, the whole object (no Range, or one S3 ignores)
    parse_range(...) -> ByteRange         206, with ``Content-Range: bytes a-b/size``
    raise RangeNotSatisfiable             416 InvalidRange, with ``Content-Range: bytes */size``

Two S3 choices, both within what RFC 9110 §14 allows, are followed here: S3 serves at most one
range (a multi-range request gets the whole object with 200, never multipart/byteranges), and a
non-zero suffix range on an empty object gets 200 with an empty body rather than 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 9110 §14.1.1: ranges-specifier = range-unit "=" range-set; range units are compared
# case-insensitively (§14.1). One int-range or suffix-range only: a comma means several ranges,
# which S3 ignores. [0-9], not \d, which also matches non-ASCII digits that int() would accept.
_SINGLE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable range of bytes, both ends inclusive as in ``Content-Range``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range {self.start}-{self.end}")

    @property
    def length(self) -> int:
        """The number of bytes in the range: the ``Content-Length`` of a 206."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` value of a 206 (RFC 9110 §14.4), e.g. ``bytes 0-99/1000``."""
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(Exception):
    """A well-formed single range that selects no byte of the object: 416 InvalidRange.

    ``requested`` is the header as received (S3 echoes it in ``<RangeRequested>``) and ``size``
    the object size (``<ActualObjectSize>``, and ``Content-Range: bytes */size``).
    """

    def __init__(self, requested: str, size: int) -> None:
        super().__init__(f"range {requested!r} not satisfiable for {size} bytes")
        self.requested = requested
        self.size = size

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of a 416 (RFC 9110 §14.4)."""
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve ``header`` against an object of ``size`` bytes.

    Returns None when the whole object is to be served with 200, a ByteRange for a 206, and
    raises RangeNotSatisfiable for a 416.
    """
    if header is None:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None:
        # RFC 9110 §14.2: a server MAY ignore a Range it cannot parse. S3 does, and it also
        # ignores multi-range requests, serving the whole object with 200.
        return None
    first, last = match.groups()
    if not first:
        return _suffix_range(header, last, size)
    if last and _exceeds(first, last):
        # RFC 9110 §14.1.2: last-pos < first-pos makes the range-spec invalid, so it is
        # ignored (200) rather than unsatisfiable (416).
        return None
    return _int_range(header, first, last, size)


def _suffix_range(header: str, digits: str, size: int) -> ByteRange | None:
    """``bytes=-n``: the last n bytes, or the whole object as a 206 when n exceeds it."""
    if not digits:
        return None  # "bytes=-" names no position at all: unparsable, ignored.
    if _is_zero(digits):
        raise RangeNotSatisfiable(header, size)  # RFC 9110 §14.1.2: bytes=-0 selects nothing.
    if size == 0:
        # A non-zero suffix on an empty object: RFC 9110 §14.1.2 calls it satisfiable, yet no
        # byte can be named; S3 answers 200 with an empty body (arrow-rs-object-store#846).
        return None
    length = _clamped(digits, size)
    return ByteRange(size - length, size - 1)


def _int_range(header: str, first: str, last: str, size: int) -> ByteRange:
    """``bytes=a-b`` or ``bytes=a-``: unsatisfiable if a is past the end, else clamped."""
    start = _clamped(first, size)
    if start >= size:
        # RFC 9110 §14.1.2: satisfiable only if first-pos < length; this includes every
        # int-range on an empty object, which S3 answers with 416 InvalidRange.
        raise RangeNotSatisfiable(header, size)
    end = size - 1 if not last else _clamped(last, size - 1)
    return ByteRange(start, end)


def _clamped(digits: str, ceiling: int) -> int:
    """``min(int(digits), ceiling)`` without converting a huge number.

    Python refuses to convert more than 4300 digits (sys.get_int_max_str_digits), and a
    Range header may carry more; any number with more digits than the ceiling exceeds it.
    """
    significant = digits.lstrip("0")
    if len(significant) > len(str(ceiling)):
        return ceiling
    return min(int(significant or "0"), ceiling)


def _exceeds(left: str, right: str) -> bool:
    """Whether decimal ``left`` > decimal ``right``, compared as text (no int conversion)."""
    a, b = left.lstrip("0"), right.lstrip("0")
    return (len(a), a) > (len(b), b)


def _is_zero(digits: str) -> bool:
    return not digits.lstrip("0")
