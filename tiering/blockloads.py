"""Block loads: one per block of one version however many readers and prefetches want it.

The orchestrator says how a block is loaded (which tiers, in which order); this module only
makes sure it is loaded once at a time, and keeps apart whose loss a failure is: a read-ahead
that failed is the prefetch's, and a reader that had joined it fetches the block itself.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from tiering.blocks import BlockKey, ObjectId
from tiering.meta import ObjectMeta
from tiering.singleflight import Done, SingleFlight, Spawn
from tiering.upstream import Answer, UpstreamBroken, UpstreamUnavailable


class Source(enum.IntEnum):
    """Where bytes came from; ordered so that max() names the slowest part of an answer."""

    RAM = 0
    DISK = 1
    PEER = 2  # another fleet member's tiers (tiering/peers.py)
    UPSTREAM = 3


SOURCE_NAMES = {
    Source.RAM: "ram",
    Source.DISK: "disk",
    Source.PEER: "peer",
    Source.UPSTREAM: "upstream",
}


def source_of(answer: Answer) -> Source:
    """Where the bytes of an answer to a block's GET came from: a member's cache, or S3."""
    return Source.PEER if answer.cached else Source.UPSTREAM


Got = tuple[bytes, Source]
Load = Callable[[ObjectId, ObjectMeta, BlockKey], Awaitable[Done[Got]]]


class BlockLoads:
    """The loads under way, by block."""

    def __init__(self, load: Load, spawn: Spawn, on_join: Callable[[], None]) -> None:
        self._load = load
        self._flight: SingleFlight[BlockKey, Got] = SingleFlight(spawn, on_join)
        self._prefetching: set[BlockKey] = set()  # blocks whose load under way is a prefetch's

    def __contains__(self, key: object) -> bool:
        return key in self._flight

    async def get(self, obj: ObjectId, meta: ObjectMeta, key: BlockKey, prefetch: bool) -> Got:
        """The block, from the load under way or a new one."""
        load, by_prefetch = self._join(obj, meta, key, prefetch)
        try:
            return await asyncio.shield(load)
        except (UpstreamBroken, UpstreamUnavailable):
            if prefetch or not by_prefetch:
                raise
        # The read-ahead this reader joined has failed: that is the prefetch's loss, not the
        # reader's, which fetches the block itself (once; other readers join it).
        load, _ = self._join(obj, meta, key, prefetch=False)
        return await asyncio.shield(load)

    def follow(self, key: BlockKey, arrived: Callable[[], Awaitable[Done[Got]]]) -> None:
        """A block already on its way (a cold GET's, tiering/arrival.py) is loading until
        `arrived()` is done: nobody fetches it again meanwhile."""
        self._flight.join(key, arrived)

    def hold(self, key: BlockKey, got: Got, settle: Callable[[], Awaitable[object]]) -> None:
        """A block already in hand counts as loaded until `settle()` (its disk write) is done."""
        self._flight.hold(key, got, settle)

    def _join(
        self, obj: ObjectId, meta: ObjectMeta, key: BlockKey, prefetch: bool
    ) -> tuple[asyncio.Future[Got], bool]:
        """The block's load and whether a prefetch started it."""
        load, joined = self._flight.join(key, lambda: self._run(obj, meta, key))
        if joined:
            return load, key in self._prefetching
        if prefetch:
            self._prefetching.add(key)
        return load, prefetch

    async def _run(self, obj: ObjectId, meta: ObjectMeta, key: BlockKey) -> Done[Got]:
        try:
            return await self._load(obj, meta, key)
        finally:
            self._prefetching.discard(key)
