"""Read-ahead decisions: which blocks to fetch before anyone asks. Pure: no I/O, no clock.

A reader is sequential when a read starts at the very byte where the previous read of the same
object ended: a whole-object GET (each block it is sent is a read), the aws cli's ranged part
downloads, a Parquet reader scanning every column. While the pattern holds the window doubles,
up to a limit; a read anywhere else collapses it, so random access never triggers prefetch.

Read-ahead fetches only what the reader has shown it will read:
- a read that skips bytes, however few, is not sequential: a reader that skips data between
  reads (one Parquet column out of several) would otherwise have its skipped bytes fetched;
- inside one response the window stops at the response's last byte. It goes past it only for
  a response that itself began where the previous one ended: a ranged read says where it ends,
  and what lies beyond is what the reader chose to skip (the next column chunk, another part).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import LRUCache

from tiering.parts import Span


@dataclass(slots=True)
class _Pattern:
    next_byte: int  # where a sequential reader's next read would start
    window: int  # blocks to keep ahead of it
    chained: bool = False  # the current response began where the previous one ended


@dataclass(frozen=True, slots=True)
class ReadAheadConfig:
    """Windows in blocks: the first prefetch of a sequential reader, and the largest."""

    min_window: int = 2
    max_window: int = 16
    tracked_objects: int = 10_000


class ReadAhead:
    """Tracks each object's last read; says which blocks a sequential reader will want next."""

    def __init__(self, config: ReadAheadConfig = ReadAheadConfig()) -> None:
        self._config = config
        self._patterns: LRUCache[Hashable, _Pattern] = LRUCache(config.tracked_objects)

    def on_read(
        self,
        obj: Hashable,
        start: int,
        end: int,
        size: int,
        block_size: int,
        response: Span | None = None,
    ) -> range:
        """Record a read of bytes start..end (inclusive), part of a response of bytes
        `response` (None: the read is the whole response); return the blocks to prefetch."""
        within = response or Span(start, end)
        pattern = self._patterns.get(obj)
        if pattern is None or start != pattern.next_byte:
            # A first read, or a jump: remember where a sequential reader would go next,
            # but prefetch nothing until the pattern shows itself.
            self._patterns[obj] = _Pattern(end + 1, 0)
            return range(0)
        if start == within.start:
            pattern.chained = True  # this response continues the previous one
        pattern.window = min(
            max(pattern.window * 2, self._config.min_window), self._config.max_window
        )
        pattern.next_byte = end + 1
        first = end // block_size + 1
        return range(first, min(first + pattern.window, _reach(pattern, within, size, block_size)))

    def window(self, obj: Hashable) -> int:
        pattern = self._patterns.get(obj)
        return pattern.window if pattern is not None else 0

    def forget(self, obj: Hashable) -> None:
        self._patterns.pop(obj, None)


def _reach(pattern: _Pattern, within: Span, size: int, block_size: int) -> int:
    """The block read-ahead stops before: the object's end for a reader walking from one
    response to the next, else the end of the blocks this response needs whole. Its last
    block, when it needs only part of it, is the stream's to fetch (tiering/parts.py)."""
    if pattern.chained or within.end >= size - 1:
        return -(-size // block_size)
    return (within.end + 1) // block_size


def footer_blocks(key: str, size: int, block_size: int, suffixes: tuple[str, ...]) -> range:
    """The block holding a columnar file's last bytes (Parquet: the footer's length and magic,
    and usually the whole footer), which its readers read first. Only that block: the bytes
    before it are the last column chunks, which a reader of some columns may never want."""
    if size <= block_size or not key.endswith(suffixes):
        return range(0)
    last = (size - 1) // block_size
    return range(last, last + 1)


class Budget:
    """Bytes of prefetch in flight, bounded: prefetch waits for nobody, it is skipped instead."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.in_flight = 0

    def take(self, size: int) -> bool:
        if self.in_flight + size > self.max_bytes:
            return False
        self.in_flight += size
        return True

    def give_back(self, size: int) -> None:
        self.in_flight -= size
