"""Read-ahead decisions: which blocks to fetch before anyone asks. Pure: no I/O, no clock.

A reader is sequential when a read starts where the previous read of the same object ended
(the next byte, or the next block): a whole-object GET, the aws cli's ranged part downloads, a
Parquet reader walking column chunks. While the pattern holds the window doubles, up to a
limit; a read anywhere else collapses it, so random access never triggers prefetch.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import LRUCache


@dataclass(slots=True)
class _Pattern:
    next_byte: int  # where a sequential reader's next read would start
    window: int  # blocks to keep ahead of it


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

    def on_read(self, obj: Hashable, start: int, end: int, size: int, block_size: int) -> range:
        """Record a read of bytes start..end (inclusive); return the blocks to prefetch."""
        pattern = self._patterns.get(obj)
        sequential = pattern is not None and _continues(pattern.next_byte, start, block_size)
        if not sequential:
            # A first read, or a jump: remember where a sequential reader would go next,
            # but prefetch nothing until the pattern shows itself.
            self._patterns[obj] = _Pattern(end + 1, 0)
            return range(0)
        assert pattern is not None
        pattern.window = min(
            max(pattern.window * 2, self._config.min_window), self._config.max_window
        )
        pattern.next_byte = end + 1
        first = end // block_size + 1
        last = min(first + pattern.window, -(-size // block_size))
        return range(first, last)

    def window(self, obj: Hashable) -> int:
        pattern = self._patterns.get(obj)
        return pattern.window if pattern is not None else 0

    def forget(self, obj: Hashable) -> None:
        self._patterns.pop(obj, None)


def _continues(expected: int, start: int, block_size: int) -> bool:
    """Whether a read at `start` continues one that ended just before `expected`: at that byte
    or a little after (readers skip small gaps), but never behind it."""
    return expected <= start < expected + block_size


FOOTER_TAIL_BYTES = 64 << 10  # what Parquet readers fetch first (pyarrow's footer read size)


def footer_blocks(key: str, size: int, block_size: int, suffixes: tuple[str, ...]) -> range:
    """The blocks holding a columnar file's last 64 KiB, which its readers read first."""
    if size <= block_size or not key.endswith(suffixes):
        return range(0)
    first = max(size - FOOTER_TAIL_BYTES, 0) // block_size
    return range(first, (size - 1) // block_size + 1)


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
