"""The read-through orchestrator: the only code that knows the order RAM -> disk -> upstream.

A GET descends through it in one line (docs/read-path.md): `stream` resolves the metadata
(tiering/resolver.py), lets the caller judge the request against it, fetches the first piece
and hands back a `Body` (tiering/streaming.py) whose chunks come block by block from here.
Blocks are loaded once however many wait (tiering/blockloads.py), from disk or else with a
ranged GET pinned by If-Match (tiering/upstreamreads.py); what comes from below is admitted
upwards, and what RAM evicts is demoted to disk. Tier errors are misses (tiering/tier.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tiering.adoptions import Adoptions
from tiering.arrival import Arrival
from tiering.blockloads import SOURCE_NAMES, BlockLoads, Got, Source
from tiering.blocks import BlockKey, ObjectId, block_count, expected_length
from tiering.claims import Claim, Claims
from tiering.freshness import FreshnessPolicy
from tiering.meta import ObjectMeta
from tiering.metastore import MetaStore
from tiering.metrics import Sample
from tiering.parts import Piece, Span, Touches, needed, part_needed
from tiering.peers import Peers
from tiering.prefetch import PrefetchConfig, Prefetcher
from tiering.readahead import Budget, ReadAhead
from tiering.resolver import Resolved, Resolver, Want
from tiering.singleflight import Done
from tiering.spool import Spool
from tiering.streaming import AnyPiece, Body, FilePiece, FirstPiece
from tiering.tasks import TaskSet
from tiering.tier import FileTier, LoopTier, StoredFile, Tier
from tiering.upstream import Upstream
from tiering.upstreamreads import ObjectChanged, RetryConfig, UpstreamReads

__all__ = [
    "Body",
    "ObjectChanged",
    "PrefetchConfig",
    "ReadThrough",
    "Resolved",
    "RetryConfig",
    "Source",
    "Want",
]
D = TypeVar("D")
log = logging.getLogger("s3tier.uploads")
WRITTEN_BUDGET_BYTES = 32 << 20  # written bodies held aside, per worker, until cached


@dataclass(slots=True)
class Counters:
    coalesced: int = 0  # requests that joined a fetch under way instead of making their own
    hot: int = 0  # answers given by hot() (the protocol's fast path)
    file_bytes: int = 0  # bytes sent as spans of disk files (tiering/streaming.py)
    served: dict[str, int] = field(default_factory=lambda: _by_source())  # to clients
    to_peers: dict[str, int] = field(default_factory=lambda: _by_source())  # to other members


class ReadThrough:
    """Metadata and blocks for GET/HEAD object, from the fastest tier that has them."""

    def __init__(
        self,
        *,
        ram: LoopTier,
        disk: FileTier | None,
        metas: MetaStore,
        upstream: Upstream,
        block_size: int,
        ram_max_object_bytes: int,
        freshness: FreshnessPolicy,
        serve_stale_on_error: bool,
        prefetch: PrefetchConfig = PrefetchConfig(),  # noqa: B008 - frozen
        retry: RetryConfig = RetryConfig(),  # noqa: B008 - frozen
        clock: Callable[[], float] = time.time,
        written_budget_bytes: int = WRITTEN_BUDGET_BYTES,
        claims: Claims | None = None,
        peers: Peers | None = None,
    ) -> None:
        self._ram = ram
        self._claims = claims  # several workers on one disk tier: one fetch per block
        self._disk = disk
        self._metas = metas
        self.block_size = block_size
        self._ram_max = ram_max_object_bytes
        self._tasks = TaskSet()
        self.counters = Counters()
        self._peers = peers
        self._reads = UpstreamReads(upstream, retry, peers, block_size)
        self._resolver = Resolver(
            metas=metas,
            reads=self._reads,
            block_size=block_size,
            freshness=freshness,
            serve_stale_on_error=serve_stale_on_error,
            tasks=self._tasks,
            landed=self._landed,
            on_join=self._joined,
            clock=clock,
            claims=claims,
        )
        self._loads = BlockLoads(self._load, self._tasks.spawn, self._joined)
        self._touched = Touches()  # tiering/parts.py: a block is admitted when read again
        # Whole blocks arriving with their metadata, until the tiers hold them (tiering/arrival.py)
        self._arriving: dict[BlockKey, Arrival] = {}
        self._adoptions = Adoptions(self._tasks.spawn, written_budget_bytes)
        self.prefetcher = Prefetcher(
            ReadAhead(prefetch.readahead),
            Budget(prefetch.budget_bytes),
            block_size,
            prefetch.footer_suffixes,
            cached=self._needs_no_load,
            load=self._prefetch_block,
            spawn=self._tasks.spawn,
        )

    # -- the read path ----------------------------------------------------------------------

    async def stream(
        self,
        obj: ObjectId,
        want: Want,
        decide: Callable[[Resolved], tuple[D, Span | None]],
        files: bool = False,
    ) -> tuple[D, Body | None]:
        """Resolve the object, let `decide` judge the request against its metadata (raising to
        refuse it) and name the bytes to send (None: no body), and fetch the first piece of
        them, so that a failure up to here can still be answered as an error. With `files`,
        the body may carry file spans of the disk tier (tiering/streaming.py)."""
        try:
            return await self._open(obj, want, decide, files)
        except ObjectChanged:
            # Replaced between metadata and first block: forget it and decide afresh for the
            # new version (nothing has been sent).
            await self.invalidate(obj)
            return await self._open(obj, want, decide, files)

    async def _open(
        self,
        obj: ObjectId,
        want: Want,
        decide: Callable[[Resolved], tuple[D, Span | None]],
        files: bool,
    ) -> tuple[D, Body | None]:
        confirming = self._adoptions.pending(obj)
        if confirming is not None:  # just written through this proxy: its body is going in
            await asyncio.wait([confirming])
        resolved = await self._resolver.resolve(obj, want)
        decision, span = decide(resolved)
        if span is None:
            return decision, None
        index = span.start // self.block_size
        first = await self._first_piece(obj, resolved, index, span, files)
        source = max(resolved.source, first[1])
        return decision, Body(self, obj, resolved.meta, span, first, source, files, want.for_peer)

    async def _first_piece(
        self, obj: ObjectId, resolved: Resolved, index: int, span: Span, files: bool
    ) -> tuple[FirstPiece, Source]:
        """What `span` needs of its first block: what came (or is arriving) with the metadata,
        or RAM, or more."""
        base = index * self.block_size
        if resolved.first is not None and resolved.first[0] == index:
            return Piece(base, resolved.first[1]), resolved.source
        need = needed(index, self.block_size, resolved.meta.size, span.start, span.end)
        arrival = resolved.arrival
        if arrival is not None and arrival.at <= need.start <= arrival.end:
            # Cut-through: the first bytes are in hand, the rest follow (tiering/arrival.py).
            await arrival.wait(span.start)
            return arrival, resolved.source
        if resolved.piece is not None and resolved.piece.covers(need):
            return resolved.piece, resolved.source
        data = self.cached_block(obj, resolved.meta, index)
        if data is not None:
            return Piece(base, data), Source.RAM
        return await self.part(obj, resolved.meta, index, span.start, span.end, files)

    async def resolve(
        self,
        obj: ObjectId,
        first_block: int | None,
        want_checksums: bool,
        part: Span | None = None,
    ) -> Resolved:
        """Fresh metadata; `first_block` is the block a cold GET fetches with it (None: HEAD),
        `part` the bytes of it the request needs if not all (a cold GET fetches only those)."""
        return await self._resolver.resolve(obj, Want(first_block, want_checksums, part))

    # -- the hit path: RAM only, without awaiting -------------------------------------------

    def cached_block(self, obj: ObjectId, meta: ObjectMeta, index: int) -> bytes | None:
        """The block if RAM has it, without awaiting: the hot path for small objects."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        data = self._ram.peek(key)
        if data is not None:
            self.prefetcher.served(key)
        return data

    def hot(self, obj: ObjectId, with_body: bool) -> tuple[ObjectMeta, bytes] | None:
        """Fresh metadata of a one-block object and, if asked, its block, both from RAM and
        without awaiting; else None, and the caller takes the full read path."""
        meta = self.hot_meta(obj)
        if meta is None or meta.size > self.block_size:
            return None
        if not with_body or meta.size == 0:
            self.counters.hot += 1
            return meta, b""
        blocks = self.hot_blocks(obj, meta, 0, 0)
        return None if blocks is None else (meta, blocks[0])

    def hot_meta(self, obj: ObjectId) -> ObjectMeta | None:
        """Fresh metadata from RAM, without awaiting; else None."""
        meta = self._metas.peek(obj)
        return meta if meta is not None and self._resolver.fresh(obj, meta) else None

    def hot_blocks(
        self, obj: ObjectId, meta: ObjectMeta, first: int, last: int
    ) -> list[bytes] | None:
        """Blocks first..last if RAM holds every one of them (then each is a RAM hit), else
        None and nothing is counted: the full path will make those lookups."""
        keys = [BlockKey(obj.bucket, obj.key, meta.etag, i) for i in range(first, last + 1)]
        if not all(self._ram.holds(key) for key in keys):
            return None
        blocks = []
        for key in keys:  # as `cached_block`, without building each key again
            data = self._ram.peek(key)
            if data is None:
                return None
            self.prefetcher.served(key)
            blocks.append(data)
        self.counters.hot += 1
        return blocks

    def account(
        self, source: Source, sent_bytes: int, as_file: bool = False, to_peer: bool = False
    ) -> None:
        """Bytes sent to a client (or, `to_peer`, to another member for its client), by where
        they came from (for metrics and stats). Counted apart, so the fleet's served bytes are
        its clients' bytes, each once."""
        counts = self.counters.to_peers if to_peer else self.counters.served
        counts[SOURCE_NAMES[source]] += sent_bytes
        if as_file:
            self.counters.file_bytes += sent_bytes

    def note_read(
        self, obj: ObjectId, meta: ObjectMeta, start: int, end: int, response: Span
    ) -> None:
        """A client has been sent bytes start..end of a `response`: read-ahead learns from it."""
        if meta.size > self.block_size:
            self.prefetcher.on_read(obj, meta, Span(start, end), response)

    # -- blocks: RAM, then disk, then the upstream -------------------------------------------

    async def block(self, obj: ObjectId, meta: ObjectMeta, index: int) -> tuple[bytes, Source]:
        """One block for a client. Counted as a prefetch used only once it is in hand: a
        read-ahead that failed, and that the client then fetched itself, was wasted."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        got = await self._block(obj, meta, key)
        self.prefetcher.served(key)
        return got

    async def part(
        self,
        obj: ObjectId,
        meta: ObjectMeta,
        index: int,
        start: int,
        end: int,
        files: bool = False,
    ) -> tuple[AnyPiece, Source]:
        """What a read of start..end needs of block `index`: the whole block (cached), unless
        the read needs part of it, no tier has it and no partial read fetched those bytes
        lately: then only that part (tiering/parts.py). With `files`, a block only the disk
        holds, of an object RAM never takes, comes as its open file."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        if files and meta.size > self._ram_max:
            opened = self._trusted_file(key, meta) or await self._disk_file(key, meta)
            if opened is not None:
                return opened, Source.DISK
        span = part_needed(index, self.block_size, meta.size, start, end)
        held = self._ram.holds(key) or key in self._loads
        if span is None or held or not self._touched.fresh(key, span):
            block, source = await self.block(obj, meta, index)
            return Piece(index * self.block_size, block), source
        stored = await self._from_disk(key, meta)
        if stored is not None:
            return Piece(index * self.block_size, stored), Source.DISK
        data, source = await self._reads.pinned(obj, meta.etag, span, span.length)
        return Piece(span.start, data), source

    def file_now(self, obj: ObjectId, meta: ObjectMeta, index: int) -> AnyPiece | None:
        """Block `index` of an object RAM never takes, as a disk file this process has
        checked, without awaiting; else None. The disk hit path's (tiering/streaming.py)."""
        if self._disk is None or meta.size <= self._ram_max:
            return None
        return self._trusted_file(BlockKey(obj.bucket, obj.key, meta.etag, index), meta)

    def _trusted_file(self, key: BlockKey, meta: ObjectMeta) -> AnyPiece | None:
        if self._disk is None or key in self._loads:
            return None
        return self._disk_piece(key, meta, self._disk.open_trusted(key))

    async def _disk_file(self, key: BlockKey, meta: ObjectMeta) -> AnyPiece | None:
        """The block as the disk tier's open file (or its bytes, if stored inline), or None:
        then it is loaded as any block is, coalesced with other readers. Every reader opens
        its own file; only a miss is worth coalescing."""
        disk = self._disk
        if disk is None or not disk.holds(key) or key in self._loads:
            return None
        return self._disk_piece(key, meta, await disk.open_block(key))

    def _disk_piece(
        self, key: BlockKey, meta: ObjectMeta, opened: StoredFile | bytes | None
    ) -> AnyPiece | None:
        """What the disk tier opened, as a piece, if it is the whole block; else None (and
        the file closed)."""
        if opened is None:
            return None
        base = key.block * self.block_size
        length = expected_length(key.block, self.block_size, meta.size)
        if isinstance(opened, bytes):
            piece: AnyPiece | None = Piece(base, opened) if len(opened) == length else None
        elif opened.size == length:
            piece = FilePiece(base, opened)
        else:
            opened.close()
            piece = None
        if piece is not None:
            self.prefetcher.served(key)
        return piece

    def _needs_no_load(self, key: BlockKey, meta: ObjectMeta) -> bool:
        """Whether prefetching the block would do nothing: it is in RAM or loading, or on disk
        for an object RAM never takes (loading it would only read it and let it go)."""
        if self._ram.holds(key) or key in self._loads:
            return True
        return meta.size > self._ram_max and self._disk is not None and self._disk.holds(key)

    async def _prefetch_block(self, obj: ObjectId, meta: ObjectMeta, index: int) -> None:
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        await self._block(obj, meta, key, prefetch=True)

    async def _block(
        self, obj: ObjectId, meta: ObjectMeta, key: BlockKey, prefetch: bool = False
    ) -> Got:
        data = self._ram.peek(key)
        if data is not None:
            return data, Source.RAM
        arrival = self._arriving.get(key)
        arrived = arrival.whole() if arrival is not None else None
        if arrived is not None:  # all in memory already, on its way into the tiers
            return arrived, Source.RAM
        filling = self._resolver.filling(obj)
        if filling is not None and key not in self._loads:
            # A cold GET of this object may be bringing this very block, and it can say so
            # only once the upstream has answered (the block's key holds the ETag): wait for
            # that, so this load joins the block's arrival instead of fetching it again (in a
            # fleet, a member's own readers and the peers it serves race so for its blocks).
            await asyncio.wait([filling])
        return await self._loads.get(obj, meta, key, prefetch)

    async def _load(self, obj: ObjectId, meta: ObjectMeta, key: BlockKey) -> Done[Got]:
        """A block below RAM. One from the upstream is served before it is stored; with
        several workers, under the block's claim (tiering/claims.py), let go once stored."""
        data = await self._from_disk(key, meta)
        if data is not None:
            return Done((data, Source.DISK))
        claim = await self._claim(obj, key.block)
        try:
            # Another worker may have stored it since the look above, waited for or not.
            if claim is not None:
                data = await self._from_disk(key, meta)
                if data is not None:
                    claim.release()
                    return Done((data, Source.DISK))
            data, source = await self._fetch(obj, meta, key.block)
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        return Done((data, source), settle=self._store(key, data, meta, claim))

    async def _claim(self, obj: ObjectId, index: int) -> Claim | None:
        if self._claims is None:
            return None
        return await self._claims.hold((obj.bucket, obj.key, index))

    async def _from_disk(self, key: BlockKey, meta: ObjectMeta) -> bytes | None:
        """The block from disk, promoted to RAM; None if absent or not whole."""
        data = await self._disk.get(key) if self._disk is not None else None
        if data is None or len(data) != expected_length(key.block, self.block_size, meta.size):
            return None
        self._admit_ram(key, data, meta)
        return data

    async def _fetch(self, obj: ObjectId, meta: ObjectMeta, index: int) -> tuple[bytes, Source]:
        """Block `index` of this version from the upstream (or its owner), whole, or an
        exception."""
        start = index * self.block_size
        span = Span(start, start + self.block_size - 1)
        length = expected_length(index, self.block_size, meta.size)
        return await self._reads.pinned(obj, meta.etag, span, length)

    def _landed(self, obj: ObjectId, resolved: Resolved) -> None:
        """A cold fetch brought a block (or the part of one a first touch needed) along with
        the metadata, inside the flight: make it visible before anyone else asks. The claim
        the fetch was made under is let go once the block and the metadata are on disk."""
        meta = resolved.meta
        self.prefetcher.on_cold(obj, meta)
        stored: asyncio.Task[Any] | None = None
        if resolved.first is not None:
            index, data = resolved.first
            key = BlockKey(obj.bucket, obj.key, meta.etag, index)
            stored = self._publish(key, data, meta, resolved.source)
        elif resolved.arrival is not None and resolved.whole:
            arrival = resolved.arrival
            key = BlockKey(obj.bucket, obj.key, meta.etag, arrival.at // self.block_size)
            claim, persisted, source = resolved.claim, resolved.persisted, resolved.source
            self._arriving[key] = arrival
            self._loads.follow(
                key, lambda: self._arrived(key, arrival, meta, source, claim, persisted)
            )
            return  # its claim is let go once it is stored
        elif resolved.piece is not None or resolved.arrival is not None:
            at, end = _extent(resolved)
            key = BlockKey(obj.bucket, obj.key, meta.etag, at // self.block_size)
            # Not cached, but remembered as touched: a second read admits the block.
            self._touched.fresh(key, Span(at, end))
        if resolved.claim is not None:
            self._tasks.spawn(_release_after(resolved.claim, resolved.persisted, stored))

    async def _arrived(
        self,
        key: BlockKey,
        arrival: Arrival,
        meta: ObjectMeta,
        source: Source,
        claim: Claim | None,
        persisted: asyncio.Task[None] | None,
    ) -> Done[Got]:
        """A block arriving with its metadata is loading until it is in, then stored like any
        block from the upstream; a failed arrival stores nothing (readers that joined it meet
        its failure)."""
        try:
            data = await arrival.done
        except BaseException:
            self._arriving.pop(key, None)
            if claim is not None:
                claim.release()
            raise
        return Done((data, source), settle=self._store(key, data, meta, claim, persisted))

    def _publish(
        self, key: BlockKey, data: bytes, meta: ObjectMeta, source: Source
    ) -> asyncio.Task[Any] | None:
        """Make a block fetched with metadata visible at once, before any await: to RAM, and
        as a finished load until its disk write (returned) lands, so no request fetches it
        again."""
        self._admit_ram(key, data, meta)
        if self._disk is None:
            return None
        stored = self._tasks.spawn(self._disk.put(key, data))
        self._loads.hold(key, (data, source), lambda: stored)
        return stored

    async def _store(
        self,
        key: BlockKey,
        data: bytes,
        meta: ObjectMeta,
        claim: Claim | None = None,
        persisted: asyncio.Task[None] | None = None,
    ) -> None:
        """To RAM and disk; then the claim it was fetched under is let go, once the metadata
        that came with it is on disk too (`persisted`)."""
        try:
            self._admit_ram(key, data, meta)
            self._arriving.pop(key, None)  # an arrival's block is now where readers look
            if self._disk is not None and self._ours(key):
                await self._disk.put(key, data)
        finally:
            if claim is not None:
                await _release_after(claim, persisted)

    def _admit_ram(self, key: BlockKey, data: bytes, meta: ObjectMeta) -> None:
        if meta.size <= self._ram_max:
            self._store_ram(key, data)

    def _store_ram(self, key: BlockKey, data: bytes) -> None:
        for gone, block in self._ram.store(key, data):
            # RAM evictions demote to disk rather than vanish; most are there already.
            if self._disk is not None and self._ours(gone) and not self._disk.holds(gone):
                self._tasks.spawn(self._disk.put(gone, block))

    def _ours(self, key: Hashable) -> bool:
        """Whether a block belongs on this node's disk: not one another member of the fleet
        owns, which keeps it there, so the fleet's disks add up to one cache. RAM still takes
        what its policy deems hot, so one hot block cannot melt its owner."""
        if self._peers is None or not isinstance(key, BlockKey):
            return True
        return not self._peers.owns_elsewhere(key.bucket, key.key, key.block)

    # -- writes, admin, warm-up --------------------------------------------------------------

    def generation(self, obj: ObjectId) -> int:
        return self._resolver.generation(obj)

    async def invalidate(self, obj: ObjectId) -> None:
        """Forget an object because a write changed it; work under way for it, and metadata
        other workers hold in RAM, goes stale."""
        self._metas.epochs.bump(obj)
        self._resolver.forget(obj)
        await self._metas.drop(obj)
        if self._peers is not None:  # and the fleet's other members (tiering/peers.py)
            await self._peers.forget_everywhere(obj.bucket, obj.key)

    async def purge(self, bucket: str, prefix: str) -> int:
        """Forget every cached object under a prefix (admin action); returns how many."""
        objects = await self._metas.under(bucket, prefix)
        for obj in objects:
            await self.invalidate(obj)
        return len(objects)

    async def adopt_written(self, obj: ObjectId, etag: str, spool: Spool, generation: int) -> None:
        """Cache a body the upstream accepted as `etag`: its blocks enter the cache (RAM when
        the object fits it, else disk) and the object is marked written; its first read
        confirms it with a HEAD (tiering/resolver.py). In the background while the bodies held
        aside fit their budget, reads of the object waiting for it (tiering/adoptions.py),
        else before returning. Closes the spool."""
        work = self._keep_written(obj, etag, spool, generation)
        if not self._adoptions.later(obj, spool.size, work, spool.close):
            await work

    async def _keep_written(self, obj: ObjectId, etag: str, spool: Spool, generation: int) -> None:
        size = spool.size
        try:
            index = 0
            async for block in spool.blocks():
                if self.generation(obj) != generation:
                    return  # written again, or deleted: this version is not the object now
                key = BlockKey(obj.bucket, obj.key, etag, index)
                if size <= self._ram_max:
                    self._store_ram(key, block)
                elif self._disk is not None:
                    await self._disk.put(key, block)
                index += 1
            self._resolver.written(obj, etag, size, generation)
        except Exception as exc:  # caching is best effort: the write itself has succeeded
            log.warning("not caching %s/%s after PUT: %s", obj.bucket, obj.key, exc)
        finally:
            spool.close()

    async def warm(self, obj: ObjectId, into_ram: bool) -> int:
        """Pull every block of an object into the cache (RAM too if asked and it fits), one
        block at a time; returns the object's size."""
        meta = (await self.resolve(obj, 0, False)).meta
        for index in range(block_count(meta.size, self.block_size)):
            key = BlockKey(obj.bucket, obj.key, meta.etag, index)
            if self._ram.holds(key):
                continue
            if into_ram or self._disk is None:
                await self._block(obj, meta, key)
            elif await self._disk.get(key) is None:
                await self._disk.put(key, (await self._fetch(obj, meta, index))[0])
        return meta.size

    # -- metrics and shutdown ----------------------------------------------------------------

    def _joined(self) -> None:
        self.counters.coalesced += 1

    async def sample(self, workers: int = 1) -> Sample:
        """What the tiers and this orchestrator have counted, for the metrics. A tier shared
        by all workers (disk) reports each worker's share, so the sum across them is right."""
        sample = Sample(
            coalesced=self.counters.coalesced,
            fast_answers=self.counters.hot,
            file_bytes=self.counters.file_bytes,
            prefetch={
                "issued": self.prefetcher.stats.issued_bytes,
                "used": self.prefetcher.stats.used_bytes,
                "wasted": self.prefetcher.stats.wasted_bytes,
            },
            served_bytes=dict(self.counters.served),
            peer_served_bytes=dict(self.counters.to_peers),
        )
        if self._peers is not None:
            sample.fleet_members = len(self._peers.membership.members)
            sample.circuits_open = self._peers.circuits_open()
        for tier in (self._ram, self._disk):
            if tier is not None:
                await _sample_tier(sample, tier, workers if tier.shared else 1)
        return sample

    async def close(self) -> None:
        await self._tasks.close()


def _by_source() -> dict[str, int]:
    return dict.fromkeys(SOURCE_NAMES.values(), 0)


def _extent(resolved: Resolved) -> tuple[int, int]:
    """First and last offset of the part of a block a first touch fetched."""
    if resolved.arrival is not None:
        return resolved.arrival.at, resolved.arrival.end
    assert resolved.piece is not None
    return resolved.piece.at, resolved.piece.at + len(resolved.piece.data) - 1


async def _release_after(claim: Claim, *steps: asyncio.Task[Any] | None) -> None:
    try:
        pending = [step for step in steps if step is not None]
        if pending:
            await asyncio.wait(pending)
    finally:
        claim.release()


async def _sample_tier(sample: Sample, tier: Tier, share: int) -> None:
    used, entries = await tier.usage()
    sample.admissions[tier.name] = tier.admissions
    sample.evictions[tier.name] = tier.evictions
    sample.usage_bytes[tier.name] = used / share
    sample.entries[tier.name] = entries / share
    sample.capacity_bytes[tier.name] = tier.capacity_bytes / share
    sample.disk_errors.update(tier.faults())
