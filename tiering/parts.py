"""Parts of blocks: what a read needs of a block, and when it costs only that. Pure: no I/O.

The cache unit is the whole block, and stays so: only whole blocks enter a tier. A read needs
all of each block it spans except, at most, its first and last. Fetching those edge blocks whole
is what made a cold read cost more than it asked for: a random 64 KiB range cost a 1 MiB block,
and a Parquet column chunk of 1.6 MiB cost two or three blocks. So, like W-TinyLFU's doorkeeper
(a key is admitted on its second sighting), a block is admitted when its bytes are read again:

- a read that needs all of a block fetches it whole, and it is cached;
- a read that needs part of a block no tier holds, none of whose bytes a partial read fetched
  lately, fetches only that part and caches nothing: bytes read once cost themselves, however
  many disjoint ranges share their block;
- a read that needs bytes of it again fetches the whole block, which is cached like any other,
  so a range read twice is a hit from then on.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import LRUCache

from tiering.blocks import block_bounds


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes start..end (inclusive) of an object."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes of an object from offset `at` on: a whole block, or the part of one a read needed."""

    at: int
    data: bytes

    def covers(self, span: Span) -> bool:
        return self.at <= span.start and span.end < self.at + len(self.data)

    def slice(self, start: int, end: int) -> memoryview | bytes:
        """The bytes of start..end (inclusive) this piece holds, without copying."""
        lo = max(start - self.at, 0)
        hi = min(end - self.at + 1, len(self.data))
        if lo == 0 and hi == len(self.data):
            return self.data
        return memoryview(self.data)[lo:hi]


def needed(index: int, block_size: int, size: int, start: int, end: int) -> Span:
    """The bytes of block `index` that a read of start..end needs."""
    first, last = block_bounds(index, block_size, size)
    return Span(max(start, first), min(end, last))


def part_needed(index: int, block_size: int, size: int, start: int, end: int) -> Span | None:
    """What a read of start..end needs of block `index`, or None when it needs all of it."""
    first, last = block_bounds(index, block_size, size)
    span = needed(index, block_size, size, start, end)
    return None if (span.start, span.end) == (first, last) else span


def first_part(start: int, end: int | None, block_size: int) -> Span | None:
    """Before the object's size is known: what a range start..end (None: to the end) needs of
    its first block, or None when it needs the whole block."""
    block_end = (start // block_size + 1) * block_size - 1
    last = block_end if end is None else min(end, block_end)
    if start % block_size == 0 and last == block_end:
        return None
    return Span(start, last)


class Touches:
    """Which bytes of which blocks partial reads fetched lately (a bounded LRU of keys, a few
    spans each, no data): the doorkeeper of the rule above."""

    def __init__(self, capacity: int = 16_384, spans_per_block: int = 8) -> None:
        self._seen: LRUCache[Hashable, tuple[Span, ...]] = LRUCache(capacity)
        self._spans_per_block = spans_per_block

    def fresh(self, key: Hashable, span: Span) -> bool:
        """Record a partial read of `span` of block `key`; whether none of its bytes was read
        before (while remembered). A block read in many pieces counts as read again."""
        seen = self._seen.get(key, ())
        again = len(seen) >= self._spans_per_block or any(_overlap(span, s) for s in seen)
        self._seen[key] = (*seen, span)
        return not again


def _overlap(a: Span, b: Span) -> bool:
    return a.start <= b.end and b.start <= a.end
