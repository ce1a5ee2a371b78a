"""Admission and eviction policies for the byte-bounded tiers: pure code, no I/O, no clock.

Every policy answers four questions about opaque hashable keys of known size in bytes:
was this a hit (`access`), what leaves when a missed key is inserted (`admit`), forget a key
(`remove`), and is it resident (`in`). The tier stores the bytes; the policy only decides.
`now` is accepted for policies that age by time; the ones here age by request count.

- `LRUPolicy`: the baseline every other cache uses (nginx, Varnish, cachetools).
- `TinyLFUPolicy`: W-TinyLFU (Einziger, Friedman, Manes: "TinyLFU", ACM ToS 2017) made
  byte-aware. A small LRU window takes every new key; what overflows the window competes for
  the main segmented LRU against its least recently used entry, and wins only with a higher
  request frequency, estimated by a count-min sketch that counts all requests, misses
  included, and halves its counters periodically so old popularity fades.
- `S3FIFOPolicy`: S3-FIFO (Yang et al., SOSP 2023) made byte-aware, kept for comparison.

Sizes are fixed per key (s3tier's keys carry the ETag, so a new version is a new key).
An entry larger than the capacity is never admitted: `admit` returns it as evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads consecutive integer keys
_HALVE = bytes(i >> 1 for i in range(256))  # translate table: every counter halved at once
_COUNTER_MAX = 15  # 4-bit counters as in the paper; popularity above 15 needs no finer rank


class Policy(Protocol):
    """What a byte-bounded tier asks of its policy. Every operation is O(1) amortised."""

    capacity_bytes: int
    used_bytes: int

    def access(self, key: Hashable, size: int, now: float) -> bool:
        """Record a request; True if `key` is resident (a hit)."""

    def admit(self, key: Hashable, size: int, now: float) -> list[Hashable]:
        """Insert `key` after a miss; the keys evicted, `key` itself if it was not admitted."""

    def remove(self, key: Hashable) -> None:
        """Forget `key` (deleted or invalidated); missing keys are fine."""

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is resident."""


class LRUPolicy:
    """Least recently used, bounded by the sum of entry sizes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.used_bytes = 0
        self._entries: OrderedDict[Hashable, int] = OrderedDict()

    def access(self, key: Hashable, size: int, now: float) -> bool:
        try:
            self._entries.move_to_end(key)
        except KeyError:
            return False
        return True

    def admit(self, key: Hashable, size: int, now: float) -> list[Hashable]:
        if size > self.capacity_bytes:
            return [key]
        if key in self._entries:
            return []
        self._entries[key] = size
        self.used_bytes += size
        evicted: list[Hashable] = []
        while self.used_bytes > self.capacity_bytes:
            victim, victim_size = self._entries.popitem(last=False)
            self.used_bytes -= victim_size
            evicted.append(victim)
        return evicted

    def remove(self, key: Hashable) -> None:
        self.used_bytes -= self._entries.pop(key, 0)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries


class FrequencySketch:
    """A count-min sketch of 8-bit cells capped at 15, with conservative update and aging.

    One table of `width` cells (a power of two); a key maps to four cells by double hashing
    and its estimate is their minimum. After `sample_factor * width` increments every cell is
    halved (the paper's reset), so the sketch tracks recent popularity. `ensure_width` doubles
    the table as the cache holds more entries; the copy keeps every count (cell i of the new
    table is cell i mod old width), so estimates stay upper bounds.
    """

    def __init__(self, width: int = 64, sample_factor: int = 10) -> None:
        self._width = 1 << max(4, (width - 1).bit_length())
        self._mask = self._width - 1
        self._table = bytearray(self._width)
        self._sample_factor = sample_factor
        self._additions = 0

    def ensure_width(self, width: int) -> None:
        while self._width < width:
            self._table += self._table
            self._width *= 2
        self._mask = self._width - 1

    def frequency(self, key: Hashable) -> int:
        x = (hash(key) * _GOLDEN) & _MASK64
        a, b, m, t = x >> 32, (x & 0xFFFFFFFF) | 1, self._mask, self._table
        return min(t[a & m], t[(a + b) & m], t[(a + 2 * b) & m], t[(a + 3 * b) & m])

    def increment(self, key: Hashable) -> None:
        x = (hash(key) * _GOLDEN) & _MASK64
        a, b, m, t = x >> 32, (x & 0xFFFFFFFF) | 1, self._mask, self._table
        i0, i1, i2, i3 = a & m, (a + b) & m, (a + 2 * b) & m, (a + 3 * b) & m
        low = min(t[i0], t[i1], t[i2], t[i3])
        if low >= _COUNTER_MAX:
            return
        # Conservative update: raise only the cells at the minimum (less overestimation).
        for i in (i0, i1, i2, i3):
            if t[i] == low:
                t[i] = low + 1
        self._additions += 1
        if self._additions >= self._sample_factor * self._width:
            self._table = self._table.translate(_HALVE)
            self._additions //= 2
