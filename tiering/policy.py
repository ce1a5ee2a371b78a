"""Admission and eviction policies for the byte-bounded tiers: pure code, no I/O, no clock.

A policy decides, the tier stores. For opaque hashable keys of known size in bytes it answers:
was this request a hit (`access`), what must leave when a missed key is inserted (`admit`),
forget a key (`remove`), what must leave for a new byte budget (`resize`), and is a key
resident (`in`). `now` is part of the interface for policies that age by time; the two here
age by request count and ignore it.

- `LRUPolicy`: least recently used, what nginx, Varnish and cachetools do; the baseline.
- `TinyLFUPolicy`: W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
  Admission Policy", ACM TOS 2017; Caffeine's design) made byte-aware. See docs/policy.md for
  how it works, why these parameters, and the simulator results behind the choice.

Sizes are fixed per key: s3tier's keys carry the ETag, so a new version is a new key.
An entry too large for the policy is never admitted: `admit` returns it as evicted at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

_MASK64 = (1 << 64) - 1
# Four multiplicative hashes; a cell index is the top bits of the 64-bit product, the
# well-mixed end (Knuth, TAOCP 6.4). Double hashing (a + i*b) was tried first: its cells are
# correlated, and full collisions came far more often than the table's occupancy predicts.
_SEED0, _SEED1, _SEED2, _SEED3 = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
)
_HALVE = bytes(i >> 1 for i in range(256))  # translate table: every counter halved at once
# Growth copies counts, so cells crowded while the table was small stay crowded until aging
# clears them: start at 4 KiB (nothing, next to the blocks it ranks) so small caches never are.
_MIN_WIDTH = 1 << 12
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

    def resize(self, capacity_bytes: int) -> list[Hashable]:
        """Change the byte budget; the keys evicted to fit a smaller one."""

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

    def resize(self, capacity_bytes: int) -> list[Hashable]:
        self.capacity_bytes = capacity_bytes
        evicted: list[Hashable] = []
        while self.used_bytes > capacity_bytes:
            victim, size = self._entries.popitem(last=False)
            self.used_bytes -= size
            evicted.append(victim)
        return evicted

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries


class FrequencySketch:
    """How often each key was requested lately: a count-min sketch with aging.

    One table of byte cells (a power of two wide); a key maps to four cells by four hashes
    and its estimate is their minimum, which can only overstate. Increments are conservative
    (only the cells at the minimum rise) and saturate at 15, the paper's 4-bit counters. After
    `sample_factor` x entries increments every cell is halved (the paper's reset), so popularity
    fades. The table grows with the cache to `counters_per_entry` cells per entry by doubling;
    cells 2j and 2j+1 of the new table start as cell j of the old, so estimates stay upper bounds.
    """

    def __init__(self, counters_per_entry: int = 16, sample_factor: int = 10) -> None:
        self._counters_per_entry = counters_per_entry
        self._sample_factor = sample_factor
        self._table = bytearray(_MIN_WIDTH)
        self._shift = 64 - (_MIN_WIDTH.bit_length() - 1)  # index: top log2(width) bits of 64
        self._entries = 0
        self._sample_size = sample_factor
        self._additions = 0

    def ensure_capacity(self, entries: int) -> None:
        """Size the sketch for a cache holding `entries` keys (it only ever grows)."""
        if entries <= self._entries:
            return
        self._entries = entries
        self._sample_size = self._sample_factor * entries
        while len(self._table) < entries * self._counters_per_entry:
            wider = bytearray(2 * len(self._table))
            wider[0::2] = wider[1::2] = self._table
            self._table = wider
            self._shift -= 1

    def frequency(self, key: Hashable) -> int:
        h, s, t = hash(key), self._shift, self._table
        return min(
            t[((h * _SEED0) & _MASK64) >> s],
            t[((h * _SEED1) & _MASK64) >> s],
            t[((h * _SEED2) & _MASK64) >> s],
            t[((h * _SEED3) & _MASK64) >> s],
        )

    def increment(self, key: Hashable) -> None:
        h, s, t = hash(key), self._shift, self._table
        i0 = ((h * _SEED0) & _MASK64) >> s
        i1 = ((h * _SEED1) & _MASK64) >> s
        i2 = ((h * _SEED2) & _MASK64) >> s
        i3 = ((h * _SEED3) & _MASK64) >> s
        low = min(t[i0], t[i1], t[i2], t[i3])
        if low >= _COUNTER_MAX:
            return
        # Conservative update: raise only the cells at the minimum (less overestimation).
        # Unrolled: this runs on every request.
        if t[i0] == low:
            t[i0] = low + 1
        if t[i1] == low:
            t[i1] = low + 1
        if t[i2] == low:
            t[i2] = low + 1
        if t[i3] == low:
            t[i3] = low + 1
        self._additions += 1
        if self._additions >= self._sample_size:
            self._table = self._table.translate(_HALVE)
            self._additions //= 2


class _Segment:
    """An LRU (or FIFO) list of key -> size with its byte total."""

    __slots__ = ("entries", "used")

    def __init__(self) -> None:
        self.entries: OrderedDict[Hashable, int] = OrderedDict()
        self.used = 0

    def push(self, key: Hashable, size: int) -> None:
        self.entries[key] = size
        self.used += size

    def pop_oldest(self) -> tuple[Hashable, int]:
        key, size = self.entries.popitem(last=False)
        self.used -= size
        return key, size

    def pop(self, key: Hashable) -> int:
        size = self.entries.pop(key)
        self.used -= size
        return size


class TinyLFUPolicy:
    """W-TinyLFU by bytes: a window LRU, then frequency admission into a segmented LRU.

    Every missed key enters the window (`window_share` of the bytes). What the window pushes
    out may enter main only by displacing main's least recently used entries, and only while
    the sketch says it was requested strictly more often than each of them; ties keep the
    incumbent, so a scan of one-hit keys cannot push out anything requested twice. Main is a
    segmented LRU: entries arrive in probation, move to protected (`protected_share` of main)
    when hit again, and return to probation when protected overflows. An entry larger than
    main (capacity minus window) is never admitted.
    """

    def __init__(
        self,
        capacity_bytes: int,
        *,
        window_share: float = 0.01,
        protected_share: float = 0.8,
        counters_per_entry: int = 16,
        sample_factor: int = 10,
    ) -> None:
        self.used_bytes = 0
        self._window_share, self._protected_share = window_share, protected_share
        self._window, self._probation, self._protected = _Segment(), _Segment(), _Segment()
        self._where: dict[Hashable, _Segment] = {}
        self.resize(capacity_bytes)
        self._sketch = FrequencySketch(counters_per_entry, sample_factor)

    def access(self, key: Hashable, size: int, now: float) -> bool:
        self._sketch.increment(key)  # misses count too: that is what admission compares
        segment = self._where.get(key)
        if segment is None:
            return False
        if segment is self._probation:
            self._promote(key)
        else:
            segment.entries.move_to_end(key)
        return True

    def admit(self, key: Hashable, size: int, now: float) -> list[Hashable]:
        if size > self._main_cap:
            return [key]
        if key in self._where:
            return []
        self._window.push(key, size)
        self._where[key] = self._window
        self._sketch.ensure_capacity(len(self._where))
        evicted: list[Hashable] = []
        while self._window.used > self._window_cap:
            self._to_main(*self._window.pop_oldest(), evicted)
        self.used_bytes = self._window.used + self._probation.used + self._protected.used
        return evicted

    def remove(self, key: Hashable) -> None:
        segment = self._where.pop(key, None)
        if segment is not None:
            self.used_bytes -= segment.pop(key)

    def resize(self, capacity_bytes: int) -> list[Hashable]:
        self.capacity_bytes = capacity_bytes
        self._window_cap = int(capacity_bytes * self._window_share)
        self._main_cap = capacity_bytes - self._window_cap
        self._protected_cap = int(self._main_cap * self._protected_share)
        # Shrinking evicts where admission would, least recently used first: main down to its
        # new share (probation before protected), then the window to its own. An oversized
        # protected segment settles at the next promotion.
        evicted: list[Hashable] = []
        while self._probation.used + self._protected.used > self._main_cap:
            segment = self._probation if self._probation.entries else self._protected
            evicted.append(self._drop_oldest(segment))
        while self._window.used > self._window_cap:
            evicted.append(self._drop_oldest(self._window))
        self.used_bytes = self._window.used + self._probation.used + self._protected.used
        return evicted

    def __contains__(self, key: Hashable) -> bool:
        return key in self._where

    def _drop_oldest(self, segment: _Segment) -> Hashable:
        victim, _ = segment.pop_oldest()
        del self._where[victim]
        return victim

    def _promote(self, key: Hashable) -> None:
        protected = self._protected
        protected.push(key, self._probation.pop(key))
        self._where[key] = protected
        while protected.used > self._protected_cap:
            demoted, size = protected.pop_oldest()
            self._probation.push(demoted, size)
            self._where[demoted] = self._probation

    def _to_main(self, key: Hashable, size: int, evicted: list[Hashable]) -> None:
        """Place a window overflow in probation, or drop it if it loses to main's LRU end."""
        free = self._main_cap - self._probation.used - self._protected.used
        if free < size:
            frequency = self._sketch.frequency(key)
            while free < size:
                segment = self._probation if self._probation.entries else self._protected
                victim = next(iter(segment.entries))
                if self._sketch.frequency(victim) >= frequency:
                    # Victims already displaced stay out: each comparison either evicts one
                    # entry or ends the loop, which keeps admission O(1) amortised.
                    del self._where[key]
                    evicted.append(key)
                    return
                free += segment.pop(victim)
                del self._where[victim]
                evicted.append(victim)
        self._probation.push(key, size)
        self._where[key] = self._probation
