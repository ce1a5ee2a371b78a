"""Prefetch: blocks loaded into the cache before a client asks, within a global byte budget.

Prefetch is background work and yields to clients: when the budget is spent a prefetch is
skipped, never queued, while client misses are never held back by it. A prefetched block that
a client then reads counts as used; one that leaves the tracking window unread, or whose fetch
failed, counts as wasted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from tiering.blocks import BlockKey, ObjectId, expected_length
from tiering.meta import ObjectMeta
from tiering.parts import Span
from tiering.peers import FOR_PEER
from tiering.readahead import Budget, ReadAhead, ReadAheadConfig, footer_blocks

log = logging.getLogger("s3tier.prefetch")


@dataclass(frozen=True, slots=True)
class PrefetchConfig:
    """Read-ahead windows, the bytes prefetch may have in flight, and the file suffixes whose
    footer is fetched on first touch."""

    readahead: ReadAheadConfig = ReadAheadConfig()  # noqa: RUF009 - frozen
    budget_bytes: int = 64 << 20
    footer_suffixes: tuple[str, ...] = (".parquet",)


@dataclass(slots=True)
class PrefetchStats:
    issued_bytes: int = 0
    used_bytes: int = 0
    wasted_bytes: int = 0
    skipped: int = 0  # wanted, but the budget was spent


class _Tracked(LRUCache[BlockKey, int]):
    """Prefetched blocks not yet read; one pushed out unread is waste."""

    def __init__(self, maxsize: int, stats: PrefetchStats) -> None:
        super().__init__(maxsize)
        self._stats = stats

    def popitem(self) -> tuple[BlockKey, int]:
        key, size = super().popitem()
        self._stats.wasted_bytes += size
        return key, size


class Prefetcher:
    """Turns read-ahead decisions into background block loads."""

    def __init__(
        self,
        readahead: ReadAhead,
        budget: Budget,
        block_size: int,
        footer_suffixes: tuple[str, ...],
        cached: Callable[[BlockKey, ObjectMeta], bool],
        load: Callable[[ObjectId, ObjectMeta, int], Awaitable[object]],
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
        track_blocks: int = 4096,
    ) -> None:
        self._readahead = readahead
        self._budget = budget
        self._block_size = block_size
        self._footer_suffixes = footer_suffixes
        self._cached = cached
        self._load = load
        self._spawn = spawn
        self.stats = PrefetchStats()
        self._tracked = _Tracked(track_blocks, self.stats)
        # Per version read ahead of: the block below which every block was cached or issued.
        # A reader walking a cached object slides its window one block per read, so each
        # read asks about one block, not the whole window again. A block evicted, or whose
        # prefetch failed, meanwhile is the reader's own fetch, as one prefetch did not get
        # to in time; one skipped for the budget is asked about again on the next read.
        self._held_to: dict[tuple[ObjectId, str], int] = {}
        self._track_objects = track_blocks

    def on_read(
        self, obj: ObjectId, meta: ObjectMeta, read: Span, response: Span | None = None
    ) -> None:
        """A client read bytes `read` (of a `response`); prefetch what a sequential reader
        wants next. Not for a fleet member's request: the member reads ahead itself, each
        block from its owner, where this node would fetch others' blocks for nobody."""
        if FOR_PEER.get():
            return
        ahead = self._readahead.on_read
        blocks = ahead(obj, read.start, read.end, meta.size, self._block_size, response)
        if not blocks:
            return
        version = (obj, meta.etag)
        start = held_to = max(self._held_to.get(version, 0), blocks.start)
        contiguous = True
        for index in range(start, blocks.stop):
            if self._issue(obj, meta, index) and contiguous:
                held_to = index + 1
            else:
                contiguous = False
        if held_to > start:
            if len(self._held_to) >= self._track_objects and version not in self._held_to:
                self._held_to.clear()  # only costs asking about each window once more
            self._held_to[version] = held_to

    def on_cold(self, obj: ObjectId, meta: ObjectMeta) -> None:
        """First touch of an object: columnar readers go to its footer first."""
        if FOR_PEER.get():
            return
        for index in footer_blocks(obj.key, meta.size, self._block_size, self._footer_suffixes):
            self._issue(obj, meta, index)

    def served(self, key: BlockKey) -> None:
        """A client received this block: if it was prefetched, the prefetch paid off."""
        size = self._tracked.pop(key, None)
        if size is not None:
            self.stats.used_bytes += size

    def _issue(self, obj: ObjectId, meta: ObjectMeta, index: int) -> bool:
        """Prefetch the block unless it needs none; False if it was wanted and skipped."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        if key in self._tracked or self._cached(key, meta):
            return True
        size = expected_length(index, self._block_size, meta.size)
        if not self._budget.take(size):
            self.stats.skipped += 1
            return False
        self.stats.issued_bytes += size
        self._tracked[key] = size
        self._spawn(self._fetch(obj, meta, index, size))
        return True

    async def _fetch(self, obj: ObjectId, meta: ObjectMeta, index: int, size: int) -> None:
        try:
            await self._load(obj, meta, index)
        except Exception as exc:  # prefetch is best effort: a later read will try again
            log.debug("prefetch of %s/%s block %d failed: %s", obj.bucket, obj.key, index, exc)
            # Whatever a reader gets for this block now, it is not from this prefetch.
            if self._tracked.pop(BlockKey(obj.bucket, obj.key, meta.etag, index), None) is not None:
                self.stats.wasted_bytes += size
        finally:
            self._budget.give_back(size)
