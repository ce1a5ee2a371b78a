"""The read-through orchestrator: the only code that knows the order RAM -> disk -> upstream.

Two kinds of shared work, each done once however many requests wait for it:
- a *flight* produces fresh metadata for an object (cold fetch, revalidation, checksum look-up);
- a *block load* produces one block of one version (disk, else a ranged GET pinned by If-Match).
Both run in tasks of their own, awaited through `asyncio.shield`, so a client that disconnects
cancels only its own wait, never the fetch the other waiters depend on.

Every write through the proxy bumps its key's *generation* (its write epoch, shared by all
worker processes: `tiering/epochs.py`). Work that started under an older generation (a fill,
the adoption of an uploaded body) still answers the requests waiting for it, but is never
remembered, so a fill that started before a write cannot land after it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from tiering.blocks import BlockKey, ObjectId, block_count, expected_length
from tiering.freshness import FreshnessPolicy, is_fresh
from tiering.meta import ObjectMeta, content_range_total, md5_matches
from tiering.metastore import MetaStore
from tiering.metrics import Sample
from tiering.parts import Piece, Span, Touches, part_needed
from tiering.prefetch import Prefetcher
from tiering.readahead import Budget, ReadAhead, ReadAheadConfig
from tiering.tier import LoopTier, Tier
from tiering.upstream import (
    Answer,
    Upstream,
    UpstreamAnswer,
    UpstreamBroken,
    UpstreamUnavailable,
    object_path,
)

log = logging.getLogger("s3tier.readthrough")
CHECKSUM_MODE = {"x-amz-checksum-mode": "ENABLED"}


class Source(enum.IntEnum):
    """Where bytes came from; ordered so that max() names the slowest part of an answer."""

    RAM = 0
    DISK = 1
    UPSTREAM = 2


SOURCE_NAMES = {Source.RAM: "ram", Source.DISK: "disk", Source.UPSTREAM: "upstream"}


class ObjectChanged(Exception):
    """The object's ETag changed while it was being read (the upstream refused If-Match)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Usable metadata for an object and how it was obtained."""

    meta: ObjectMeta
    source: Source
    revalidated: bool = False
    stale: bool = False
    first: tuple[int, bytes] | None = None  # a block fetched along with the metadata
    piece: Piece | None = None  # or, on a first touch, the part of it the request needed


@dataclass(slots=True)
class Flight:
    generation: int
    task: asyncio.Task[Resolved] | None = None


@dataclass(frozen=True, slots=True)
class PrefetchConfig:
    """Read-ahead windows, the bytes prefetch may have in flight, and the file suffixes whose
    footer is fetched on first touch."""

    readahead: ReadAheadConfig = ReadAheadConfig()  # noqa: RUF009 - frozen
    budget_bytes: int = 64 << 20
    footer_suffixes: tuple[str, ...] = (".parquet",)


RETRY_STATUSES = frozenset({500, 503})


def says_nothing_of_the_object(status: int) -> bool:
    """A 5xx is the upstream failing to answer (RFC 9110 §15.6), not news of the object, so it
    never makes the cache forget one. A 404 or a new ETag is news; so is a 403: access taken
    away from the proxy must not be outlived by the copy it cached (fail closed)."""
    return status >= 500


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Pauses before each retry of an idempotent upstream read; () switches retries off."""

    backoffs_s: tuple[float, ...] = (0.05, 0.25)


@dataclass(slots=True)
class Counters:
    coalesced: int = 0
    hot: int = 0  # answers given by hot() (the protocol's fast path)
    served: dict[str, int] = field(default_factory=lambda: {"ram": 0, "disk": 0, "upstream": 0})


class ReadThrough:
    """Metadata and blocks for GET/HEAD object, from the fastest tier that has them."""

    def __init__(
        self,
        *,
        ram: LoopTier,
        disk: Tier | None,
        metas: MetaStore,
        upstream: Upstream,
        block_size: int,
        ram_max_object_bytes: int,
        freshness: FreshnessPolicy,
        serve_stale_on_error: bool,
        prefetch: PrefetchConfig = PrefetchConfig(),
        retry: RetryConfig = RetryConfig(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._retry = retry
        self._ram = ram
        self._disk = disk
        self._metas = metas
        self._upstream = upstream
        self.block_size = block_size
        self._ram_max = ram_max_object_bytes
        self._freshness = freshness
        self._stale_ok = serve_stale_on_error
        self._clock = clock
        self._flights: dict[tuple[ObjectId, str], Flight] = {}
        self._epochs = metas.epochs  # write epochs, shared by every worker process
        self._loads: dict[BlockKey, asyncio.Future[tuple[bytes, Source]]] = {}
        self._prefetching: set[BlockKey] = set()  # blocks whose load in _loads is a prefetch's
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counters = Counters()
        self._touched = Touches()  # tiering/parts.py: a block is admitted when read again
        self.prefetcher = Prefetcher(
            ReadAhead(prefetch.readahead),
            Budget(prefetch.budget_bytes),
            block_size,
            prefetch.footer_suffixes,
            cached=lambda key: self._ram.holds(key) or key in self._loads,
            load=self._prefetch_block,
            spawn=self._spawn,
        )

    # -- metadata ---------------------------------------------------------------------------

    async def resolve(
        self,
        obj: ObjectId,
        first_block: int | None,
        want_checksums: bool,
        part: Span | None = None,
    ) -> Resolved:
        """Fresh metadata; `first_block` is the block a cold GET fetches with it (None: HEAD),
        `part` the bytes of it the request needs if not all (a cold GET fetches only those)."""
        meta = self._metas.peek(obj)
        if meta is not None and self._fresh(obj, meta):
            resolved = Resolved(meta, Source.RAM)
        else:
            # No await between the RAM check and joining: a flight that finishes meanwhile
            # has already put its result in RAM, so nobody fetches the same thing twice.
            resolved = await self._join(
                obj, "fill", lambda f: self._fill(obj, meta, first_block, want_checksums, f, part)
            )
        if want_checksums and resolved.meta.checksums is None:
            return await self._join(obj, "checksums", lambda f: self._checksums(obj, resolved, f))
        return resolved

    def _fresh(self, obj: ObjectId, meta: ObjectMeta) -> bool:
        policy = self._freshness.for_key(obj.bucket, obj.key)
        return is_fresh(policy, meta.validated_at, self._clock())

    async def _fill(
        self,
        obj: ObjectId,
        meta: ObjectMeta | None,
        first_block: int | None,
        want_checksums: bool,
        flight: Flight,
        part: Span | None = None,
    ) -> Resolved:
        """Metadata that RAM could not give: from disk, by revalidation, or cold."""
        if meta is None:
            meta = await self._metas.load(obj)
            if meta is not None and self._fresh(obj, meta):
                return Resolved(meta, Source.DISK)
        if meta is not None:
            return await self._revalidate(obj, meta, first_block, flight)
        return await self._cold(obj, first_block, want_checksums, flight, part)

    async def purge(self, bucket: str, prefix: str) -> int:
        """Forget every cached object under a prefix (admin action); returns how many."""
        objects = await self._metas.under(bucket, prefix)
        for obj in objects:
            await self.invalidate(obj)
        return len(objects)

    def generation(self, obj: ObjectId) -> int:
        return self._epochs.current(obj)

    async def invalidate(self, obj: ObjectId) -> None:
        """Forget an object because a write changed it; work under way for it, and metadata
        other workers hold in RAM, goes stale."""
        self._epochs.bump(obj)
        for kind in ("fill", "checksums"):
            self._flights.pop((obj, kind), None)
        await self._metas.drop(obj)

    async def adopt(
        self, obj: ObjectId, meta: ObjectMeta, blocks: AsyncIterator[bytes], generation: int
    ) -> bool:
        """Cache an object written through the proxy, block by block, unless another write has
        come since `generation`. Blocks go first, so the metadata never points at missing ones."""
        index = 0
        async for block in blocks:
            if self.generation(obj) != generation:
                return False
            await self._store(BlockKey(obj.bucket, obj.key, meta.etag, index), block, meta)
            index += 1
        if self.generation(obj) != generation:
            return False
        self._metas.remember(obj, meta)
        await self._metas.persist(obj, meta)
        return True

    async def _join(
        self,
        obj: ObjectId,
        kind: str,
        make: Callable[[Flight], Coroutine[Any, Any, Resolved]],
    ) -> Resolved:
        flight = self._flights.get((obj, kind))
        if flight is None:
            flight = Flight(self.generation(obj))
            flight.task = self._spawn(self._fly((obj, kind), flight, make))
            self._flights[(obj, kind)] = flight
        else:
            self.counters.coalesced += 1
        assert flight.task is not None
        return await asyncio.shield(flight.task)

    async def _fly(
        self,
        key: tuple[ObjectId, str],
        flight: Flight,
        make: Callable[[Flight], Coroutine[Any, Any, Resolved]],
    ) -> Resolved:
        try:
            return await make(flight)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _cold(
        self,
        obj: ObjectId,
        first_block: int | None,
        want_checksums: bool,
        flight: Flight,
        part: Span | None = None,
    ) -> Resolved:
        if first_block is None:
            return await self._from_head(obj, flight)
        # S3 sends full-object checksums only to a whole GET or a HEAD; ask in parallel so a
        # cold miss still costs one round trip of latency.
        head = self._spawn(self._head(obj, None)) if want_checksums else None
        try:
            if part is None:
                answer = await self._get_block(obj, first_block, None, {})
            else:  # nobody has touched a block of an unknown object: fetch what is needed
                answer = await self._get_range(obj, part, None, {})
            resolved = await self._accept(obj, answer, first_block, flight, head, part)
        finally:
            if head is not None:
                head.cancel()
        return resolved

    async def _revalidate(
        self, obj: ObjectId, meta: ObjectMeta, first_block: int | None, flight: Flight
    ) -> Resolved:
        """A request conditional on the cached ETag: 304 keeps the entry (RFC 9110 §13.1.2).
        No usable answer (unreachable, a broken body or a 5xx, after the retries) keeps it too,
        for the next revalidation; with --serve-stale-on-error it is served meanwhile, as STALE
        (the stale-if-error of RFC 5861 §4)."""
        try:
            answer = await self._ask_again(obj, meta, first_block)
        except (UpstreamUnavailable, UpstreamBroken) as exc:
            if self._stale_ok:
                return self._stale(obj, meta, str(exc))
            raise
        if answer.status == 304:
            return self._keep(obj, meta, flight)
        if says_nothing_of_the_object(answer.status) and self._stale_ok:
            return self._stale(obj, meta, f"status {answer.status}")
        if first_block is None:
            return await self._described(obj, answer, flight)
        return await self._accept(obj, answer, first_block, flight, None)

    async def _ask_again(self, obj: ObjectId, meta: ObjectMeta, first_block: int | None) -> Answer:
        if first_block is None:
            return await self._head(obj, meta.etag)
        return await self._get_block(obj, first_block, None, {"if-none-match": meta.etag})

    def _stale(self, obj: ObjectId, meta: ObjectMeta, why: str) -> Resolved:
        log.warning("revalidation of %s/%s failed (%s), serving stale", obj.bucket, obj.key, why)
        return Resolved(meta, Source.RAM, stale=True)

    async def _accept(
        self,
        obj: ObjectId,
        answer: Answer,
        index: int,
        flight: Flight,
        head: asyncio.Task[Answer] | None,
        part: Span | None = None,
    ) -> Resolved:
        """Turn the answer to a ranged GET into metadata plus its block (or `part` of it)."""
        if answer.status == 416:
            # The block starts past the end: the object is empty or shorter than asked. Only a
            # HEAD can describe it.
            return await self._from_head(obj, flight)
        if answer.status not in (200, 206):
            await self._refused(obj, answer, answer.body)
        total = content_range_total(answer.header(b"content-range") or "")
        size = total if answer.status == 206 and total is not None else len(answer.body)
        if answer.status == 200:
            index, part = 0, None
        at = part.start if part is not None else index * self.block_size
        whole = expected_length(index, self.block_size, size)
        want = whole if part is None else min(part.end, size - 1) - part.start + 1
        if len(answer.body) != want:
            raise UpstreamBroken("block length differs from Content-Range")
        meta = ObjectMeta.from_upstream(answer.headers, size, self._clock(), whole=False)
        if len(answer.body) == size and not md5_matches(meta, answer.body):
            raise UpstreamBroken("the object's bytes do not match its ETag")
        if head is not None:
            meta = await self._merge_checksums(meta, head)
        self._remember(obj, meta, flight)
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        self.prefetcher.on_cold(obj, meta)
        if at != index * self.block_size or len(answer.body) != whole:
            self._touched.fresh(key, Span(at, at + want - 1))  # not cached: see tiering/parts.py
            return Resolved(meta, Source.UPSTREAM, piece=Piece(at, answer.body))
        self._publish(key, answer.body, meta)
        return Resolved(meta, Source.UPSTREAM, first=(index, answer.body))

    async def _from_head(self, obj: ObjectId, flight: Flight) -> Resolved:
        return await self._described(obj, await self._head(obj, None), flight)

    async def _described(self, obj: ObjectId, answer: Answer, flight: Flight) -> Resolved:
        """Metadata from the answer to a HEAD."""
        if answer.status != 200:
            await self._refused(obj, answer, b"")
        meta = self._meta_from_head(answer)
        self._remember(obj, meta, flight)
        return Resolved(meta, Source.UPSTREAM)

    async def _refused(self, obj: ObjectId, answer: Answer, body: bytes) -> NoReturn:
        """Replay the upstream's refusal; forget the object only if it said something of it."""
        if not says_nothing_of_the_object(answer.status):
            await self._metas.drop(obj)
        raise UpstreamAnswer(answer.status, list(answer.headers), body)

    async def describe(self, obj: ObjectId) -> ObjectMeta | None:
        """What the upstream says of the object now (a HEAD), or None if it has no such object."""
        answer = await self._head(obj, None)
        return self._meta_from_head(answer) if answer.status == 200 else None

    def _meta_from_head(self, answer: Answer) -> ObjectMeta:
        size = int(answer.header(b"content-length") or 0)
        return ObjectMeta.from_upstream(answer.headers, size, self._clock(), whole=True)

    async def _checksums(self, obj: ObjectId, resolved: Resolved, flight: Flight) -> Resolved:
        meta = await self._merge_checksums(resolved.meta, self._spawn(self._head(obj, None)))
        if meta.checksums is not None:
            self._remember(obj, meta, flight)
        return replace(resolved, meta=meta)

    async def _merge_checksums(self, meta: ObjectMeta, head: asyncio.Task[Answer]) -> ObjectMeta:
        try:
            answer = await head
        except (UpstreamUnavailable, UpstreamBroken):
            return meta
        if answer.status != 200 or answer.header(b"etag") != meta.etag:
            return meta  # another version by now: leave the checksums unknown
        whole = ObjectMeta.from_upstream(answer.headers, meta.size, meta.validated_at, whole=True)
        return meta.with_checksums(whole.checksums or ())

    def _keep(self, obj: ObjectId, meta: ObjectMeta, flight: Flight) -> Resolved:
        fresh = meta.revalidated(self._clock())
        self._remember(obj, fresh, flight)
        return Resolved(fresh, Source.RAM, revalidated=True)

    def _remember(self, obj: ObjectId, meta: ObjectMeta, flight: Flight) -> None:
        if self.generation(obj) != flight.generation:
            return
        self._metas.remember(obj, meta)
        self._spawn(self._metas.persist(obj, meta))

    # -- blocks -----------------------------------------------------------------------------

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
        meta = self._metas.peek(obj)
        if meta is None or meta.size > self.block_size or not self._fresh(obj, meta):
            return None
        data = b""
        if with_body and meta.size > 0:
            if not self._ram.holds(BlockKey(obj.bucket, obj.key, meta.etag, 0)):
                return None  # not counted as a RAM lookup: the full path will make that one
            data = self.cached_block(obj, meta, 0) or b""
        self.counters.hot += 1
        return meta, data

    def account(self, source: Source, sent_bytes: int) -> None:
        """Bytes sent to a client, by where they came from (for metrics and stats)."""
        self.counters.served[SOURCE_NAMES[source]] += sent_bytes

    async def sample(self, workers: int = 1) -> Sample:
        """What the tiers and this orchestrator have counted, for the metrics. A tier shared
        by all workers (disk) reports each worker's share, so the sum across them is right."""
        sample = Sample(
            coalesced=self.counters.coalesced,
            fast_answers=self.counters.hot,
            prefetch={
                "issued": self.prefetcher.stats.issued_bytes,
                "used": self.prefetcher.stats.used_bytes,
                "wasted": self.prefetcher.stats.wasted_bytes,
            },
            served_bytes=dict(self.counters.served),
        )
        for tier in (self._ram, self._disk):
            if tier is not None:
                await _sample_tier(sample, tier, workers if tier.shared else 1)
        return sample

    def note_read(
        self, obj: ObjectId, meta: ObjectMeta, start: int, end: int, response: Span
    ) -> None:
        """A client has been sent bytes start..end of a `response`: read-ahead learns from it."""
        if meta.size > self.block_size:
            self.prefetcher.on_read(obj, meta, Span(start, end), response)

    async def block(self, obj: ObjectId, meta: ObjectMeta, index: int) -> tuple[bytes, Source]:
        """One block for a client. Counted as a prefetch used only once it is in hand: a
        read-ahead that failed, and that the client then fetched itself, was wasted."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        got = await self._block(obj, meta, key)
        self.prefetcher.served(key)
        return got

    async def part(
        self, obj: ObjectId, meta: ObjectMeta, index: int, start: int, end: int
    ) -> tuple[Piece, Source]:
        """What a read of start..end needs of block `index`: the whole block (cached), unless
        the read needs part of it, no tier has it and no partial read fetched those bytes
        lately: then only that part (tiering/parts.py)."""
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        span = part_needed(index, self.block_size, meta.size, start, end)
        held = self._ram.holds(key) or key in self._loads
        if span is None or held or not self._touched.fresh(key, span):
            block, source = await self.block(obj, meta, index)
            return Piece(index * self.block_size, block), source
        stored = await self._disk.get(key) if self._disk is not None else None
        if stored is not None and len(stored) == expected_length(index, self.block_size, meta.size):
            self._admit_ram(key, stored, meta)
            return Piece(index * self.block_size, stored), Source.DISK
        return Piece(span.start, await self._fetch_part(obj, meta, span)), Source.UPSTREAM

    async def _fetch_part(self, obj: ObjectId, meta: ObjectMeta, span: Span) -> bytes:
        """Bytes `span` of this version from the upstream, or an exception (as _fetch_block)."""
        answer = await self._get_range(obj, span, meta.etag, {})
        if answer.status in (404, 412):
            raise ObjectChanged(f"{obj.bucket}/{obj.key} changed during the read")
        if answer.status != 206 or len(answer.body) != span.length:
            raise UpstreamBroken(f"bytes {span.start}-{span.end}: status {answer.status}")
        return answer.body

    async def _prefetch_block(self, obj: ObjectId, meta: ObjectMeta, index: int) -> None:
        key = BlockKey(obj.bucket, obj.key, meta.etag, index)
        await self._block(obj, meta, key, prefetch=True)

    async def _block(
        self, obj: ObjectId, meta: ObjectMeta, key: BlockKey, prefetch: bool = False
    ) -> tuple[bytes, Source]:
        data = self._ram.peek(key)
        if data is not None:
            return data, Source.RAM
        load, by_prefetch = self._join_load(obj, meta, key, prefetch)
        try:
            return await asyncio.shield(load)
        except (UpstreamBroken, UpstreamUnavailable):
            if prefetch or not by_prefetch:
                raise
        # The read-ahead this reader joined has failed: that is the prefetch's loss, not the
        # reader's, which fetches the block itself (once; other readers join it).
        load, _ = self._join_load(obj, meta, key, prefetch=False)
        return await asyncio.shield(load)

    def _join_load(
        self, obj: ObjectId, meta: ObjectMeta, key: BlockKey, prefetch: bool
    ) -> tuple[asyncio.Future[tuple[bytes, Source]], bool]:
        """The block's load under way, or a new one; and whether a prefetch started it."""
        load = self._loads.get(key)
        if load is not None:
            self.counters.coalesced += 1
            return load, key in self._prefetching
        load = asyncio.get_running_loop().create_future()
        self._loads[key] = load
        if prefetch:
            self._prefetching.add(key)
        self._spawn(self._load(obj, meta, key, load))
        return load, prefetch

    async def _load(
        self,
        obj: ObjectId,
        meta: ObjectMeta,
        key: BlockKey,
        load: asyncio.Future[tuple[bytes, Source]],
    ) -> None:
        want = expected_length(key.block, self.block_size, meta.size)
        try:
            data = await self._disk.get(key) if self._disk is not None else None
            if data is not None and len(data) == want:
                load.set_result((data, Source.DISK))
                self._admit_ram(key, data, meta)
                return
            data = await self._fetch_block(obj, meta, key)
            load.set_result((data, Source.UPSTREAM))
            await self._store(key, data, meta)
        except BaseException as exc:
            if not load.done():
                load.set_exception(exc)
                load.exception()  # retrieved: waiters may all have gone away
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._loads.get(key) is load:
                del self._loads[key]
                self._prefetching.discard(key)

    async def _fetch_block(self, obj: ObjectId, meta: ObjectMeta, key: BlockKey) -> bytes:
        """One block of this version from the upstream, whole, or an exception."""
        answer = await self._get_block(obj, key.block, meta.etag, {})
        if answer.status in (404, 412):
            # Replaced (If-Match failed) or deleted since the metadata was read: the caller
            # forgets the key and, if nothing was sent yet, answers afresh (a 404 verbatim).
            raise ObjectChanged(f"{obj.bucket}/{obj.key} changed during the read")
        want = expected_length(key.block, self.block_size, meta.size)
        if answer.status not in (200, 206) or len(answer.body) != want:
            raise UpstreamBroken(f"block {key.block}: status {answer.status}")
        return answer.body

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
                await self._disk.put(key, await self._fetch_block(obj, meta, key))
        return meta.size

    def _publish(self, key: BlockKey, data: bytes, meta: ObjectMeta) -> None:
        """Make a block fetched with metadata visible at once, before any await: to RAM, and
        as a finished load until its disk write lands, so no request fetches it again."""
        self._admit_ram(key, data, meta)
        if self._disk is None or key in self._loads:
            return
        done: asyncio.Future[tuple[bytes, Source]] = asyncio.get_running_loop().create_future()
        done.set_result((data, Source.UPSTREAM))
        self._loads[key] = done
        self._spawn(self._write_through(key, data, done))

    async def _write_through(
        self, key: BlockKey, data: bytes, done: asyncio.Future[tuple[bytes, Source]]
    ) -> None:
        try:
            assert self._disk is not None
            await self._disk.put(key, data)
        finally:
            if self._loads.get(key) is done:
                del self._loads[key]

    async def _store(self, key: BlockKey, data: bytes, meta: ObjectMeta) -> None:
        self._admit_ram(key, data, meta)
        if self._disk is not None:
            await self._disk.put(key, data)

    def _admit_ram(self, key: BlockKey, data: bytes, meta: ObjectMeta) -> None:
        if meta.size > self._ram_max:
            return
        for gone, block in self._ram.store(key, data):
            # RAM evictions demote to disk rather than vanish; most are there already.
            if self._disk is not None and not self._disk.holds(gone):
                self._spawn(self._disk.put(gone, block))

    # -- upstream ---------------------------------------------------------------------------

    async def _get_block(
        self, obj: ObjectId, index: int, if_match: str | None, extra: dict[str, str]
    ) -> Answer:
        start = index * self.block_size
        headers = {"range": f"bytes={start}-{start + self.block_size - 1}", **extra}
        if if_match is not None:
            headers["if-match"] = if_match
        return await self._call("GET", obj, headers, self.block_size)

    async def _get_range(
        self, obj: ObjectId, span: Span, if_match: str | None, extra: dict[str, str]
    ) -> Answer:
        headers = {"range": f"bytes={span.start}-{span.end}", **extra}
        if if_match is not None:
            headers["if-match"] = if_match
        return await self._call("GET", obj, headers, span.length)

    async def _head(self, obj: ObjectId, if_none_match: str | None) -> Answer:
        headers = dict(CHECKSUM_MODE)
        if if_none_match is not None:
            headers["if-none-match"] = if_none_match
        return await self._call("HEAD", obj, headers, 0)

    async def _call(
        self, method: str, obj: ObjectId, headers: dict[str, str], limit: int
    ) -> Answer:
        """A GET of a block or a HEAD: idempotent, so retried with backoff when no answer came
        (refused, reset, timed out), when its body broke off, or when the upstream said 500/503.
        A broken body is retried because `fetch` holds the whole answer before returning it:
        none of its bytes has reached anyone yet. A block after the first is pinned by If-Match,
        so a retry cannot return another version's bytes."""
        path = object_path(obj.bucket, obj.key)
        operation = "get_block" if method == "GET" else "head"
        for attempt, pause in enumerate((*self._retry.backoffs_s, None)):
            try:
                answer = await self._upstream.fetch(
                    method, path, dict(headers), max(limit, 1 << 16), operation=operation
                )
            except (UpstreamUnavailable, UpstreamBroken):
                if pause is None:
                    raise
            else:
                if answer.status not in RETRY_STATUSES or pause is None:
                    return answer
            log.info("retrying %s %s (attempt %d)", method, path, attempt + 2)
            await asyncio.sleep(pause * (0.5 + random.random()))
        raise AssertionError("unreachable")

    # -- tasks ------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # mark it retrieved: it reached the waiters through shield

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _sample_tier(sample: Sample, tier: Tier, share: int) -> None:
    used, entries = await tier.usage()
    sample.admissions[tier.name] = tier.admissions
    sample.evictions[tier.name] = tier.evictions
    sample.usage_bytes[tier.name] = used / share
    sample.entries[tier.name] = entries / share
    sample.capacity_bytes[tier.name] = tier.capacity_bytes / share
    sample.disk_errors.update(tier.faults())
