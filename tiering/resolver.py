"""Metadata resolution: fresh metadata for an object, from RAM, disk, revalidation, or cold.

A *flight* produces metadata once however many requests wait for it (tiering/singleflight.py):
a fill (disk, revalidation or a cold fetch) or a checksum look-up. A cold GET fetches the first
block it needs with the metadata, in one round trip; the orchestrator is told of that block
(`landed`) while the flight still runs, so nobody fetches it again.

A body written through this proxy is *written*: its blocks are cached under the ETag the upstream
returned, but nothing is served from them until the first read has confirmed, with one HEAD,
that this version is the current one and learnt what a GET carries (Last-Modified, checksums).
A write nobody reads costs the upstream nothing more than the write.

Every write through the proxy bumps its key's *generation* (its write epoch, shared by all
worker processes: `tiering/epochs.py`). A flight that started under an older generation still
answers the requests waiting for it, but what it found is never remembered, so a fill that
started before a write cannot land after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from cachetools import LRUCache

from tiering.arrival import Arrival
from tiering.blockloads import Source, source_of
from tiering.blocks import ObjectId, expected_length
from tiering.claims import Claim, Claims
from tiering.freshness import FreshnessPolicy, is_fresh
from tiering.meta import ObjectMeta, content_range_total, etag_md5, md5_matches
from tiering.metastore import MetaStore
from tiering.parts import Piece, Span
from tiering.singleflight import SingleFlight
from tiering.tasks import TaskSet
from tiering.upstream import Answer, UpstreamAnswer, UpstreamBroken, UpstreamUnavailable
from tiering.upstreamreads import Shape, UpstreamReads, says_nothing_of_the_object

log = logging.getLogger("s3tier.readthrough")
WRITTEN_MAX = 1 << 14  # written objects awaiting their first read, per worker


@dataclass(frozen=True, slots=True)
class Want:
    """What a request needs resolved: the block a cold GET fetches with the metadata (None:
    a HEAD, or a suffix range whose start is unknown), the part of it the request needs if
    not all, and whether the full-object checksums must be known."""

    first_block: int | None
    checksums: bool = False
    part: Span | None = None
    for_peer: bool = False  # another member's block request: its bytes are counted apart


@dataclass(frozen=True, slots=True)
class Resolved:
    """Usable metadata for an object and how it was obtained."""

    meta: ObjectMeta
    source: Source
    revalidated: bool = False
    stale: bool = False
    first: tuple[int, bytes] | None = None  # a block fetched along with the metadata
    piece: Piece | None = None  # or, on a first touch, the part of it the request needed
    arrival: Arrival | None = None  # or either, still arriving (tiering/arrival.py)
    whole: bool = False  # the arrival is a whole block (else the part a first touch needs)
    claim: Claim | None = None  # the cold fetch's claim, let go once `first` is on disk
    persisted: asyncio.Task[None] | None = None  # and the metadata too


class Resolver:
    """ObjectId -> Resolved, each fetch or revalidation made once for all who wait."""

    def __init__(
        self,
        *,
        metas: MetaStore,
        reads: UpstreamReads,
        block_size: int,
        freshness: FreshnessPolicy,
        serve_stale_on_error: bool,
        tasks: TaskSet,
        landed: Callable[[ObjectId, Resolved], None],
        on_join: Callable[[], None],
        clock: Callable[[], float] = time.time,
        claims: Claims | None = None,
    ) -> None:
        self._metas = metas
        self._claims = claims
        self._reads = reads
        self._block_size = block_size
        self._freshness = freshness
        self._stale_ok = serve_stale_on_error
        self._spawn = tasks.spawn
        self._landed = landed
        self._clock = clock
        self._epochs = metas.epochs  # write epochs, shared by every worker process
        self._flights: SingleFlight[tuple[ObjectId, str], Resolved] = SingleFlight(
            tasks.spawn, on_join
        )
        # (etag, size, generation) of bodies written through this worker, blocks cached.
        self._written: LRUCache[ObjectId, tuple[str, int, int]] = LRUCache(WRITTEN_MAX)

    async def resolve(self, obj: ObjectId, want: Want) -> Resolved:
        """Fresh metadata, and with it on a cold GET the block (or part) `want` names."""
        meta = self._metas.peek(obj)
        if meta is not None and self.fresh(obj, meta):
            resolved = Resolved(meta, Source.RAM)
        else:
            # No await between the RAM check and joining: a flight that finishes meanwhile
            # has already put its result in RAM, so nobody fetches the same thing twice.
            generation = self.generation(obj)
            resolved = await self._flights.run(
                (obj, "fill"), lambda: self._fill(obj, meta, want, generation)
            )
        if want.checksums and resolved.meta.checksums is None:
            generation = self.generation(obj)
            return await self._flights.run(
                (obj, "checksums"), lambda: self._checksums(obj, resolved, generation)
            )
        return resolved

    def filling(self, obj: ObjectId) -> asyncio.Future[Resolved] | None:
        """The metadata fill under way for `obj` (a cold GET, its block on the way), if any."""
        return self._flights.running((obj, "fill"))

    def fresh(self, obj: ObjectId, meta: ObjectMeta) -> bool:
        policy = self._freshness.for_key(obj.bucket, obj.key)
        return is_fresh(policy, meta.validated_at, self._clock())

    def generation(self, obj: ObjectId) -> int:
        return self._epochs.current(obj)

    def forget(self, obj: ObjectId) -> None:
        """A write has changed the object: flights under way for it answer only their own."""
        for kind in ("fill", "checksums"):
            self._flights.forget((obj, kind))

    def written(self, obj: ObjectId, etag: str, size: int, generation: int) -> None:
        """The upstream accepted a body of `size` bytes as `etag` under `generation`, and its
        blocks are cached: the first read confirms it (`_confirm_written`)."""
        if self.generation(obj) == generation:
            self._written[obj] = (etag, size, generation)

    async def _fill(
        self, obj: ObjectId, meta: ObjectMeta | None, want: Want, generation: int
    ) -> Resolved:
        """Metadata that RAM could not give: from disk, by revalidation, or cold."""
        if meta is None:
            written = self._written.pop(obj, None)
            if written is not None and written[2] == generation:
                return await self._confirm_written(obj, written[:2], want, generation)
            claim = await self._claim(obj, want)
            try:
                meta = await self._metas.load(obj)
            except BaseException:
                if claim is not None:
                    claim.release()
                raise
            if meta is None:
                return await self._cold(obj, want, generation, claim)
            if claim is not None:
                claim.release()
            if self.fresh(obj, meta):
                return Resolved(meta, Source.DISK)
        return await self._revalidate(obj, meta, want.first_block, generation)

    async def _claim(self, obj: ObjectId, want: Want) -> Claim | None:
        """With several workers, the claim on the block a cold GET would fetch with the
        metadata (tiering/claims.py), taken before the disk is asked for the metadata: what
        another worker stored under it is then on disk, so one look is enough. A first-touch
        part (cached by nobody) and a HEAD take none."""
        if self._claims is None or want.first_block is None or want.part is not None:
            return None
        return await self._claims.hold((obj.bucket, obj.key, want.first_block))

    async def _cold(
        self, obj: ObjectId, want: Want, generation: int, claim: Claim | None = None
    ) -> Resolved:
        if want.first_block is None:
            return await self._from_head(obj, generation)
        # S3 sends full-object checksums only to a whole GET or a HEAD; ask in parallel so a
        # cold miss still costs one round trip of latency.
        head = self._spawn(self._reads.head(obj)) if want.checksums else None
        try:
            # Nobody has touched a block of an unknown object: fetch only what is needed.
            span = want.part if want.part is not None else self._block(want.first_block)
            resolved = await self._arriving(
                obj, span, want.first_block, generation, head, want.part, claim
            )
            if claim is not None and resolved.claim is None:
                claim.release()  # described by a HEAD, with no block to store
            return resolved
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        finally:
            if head is not None:
                head.cancel()

    async def _confirm_written(
        self, obj: ObjectId, written: tuple[str, int], want: Want, generation: int
    ) -> Resolved:
        """The first read of a body written through this proxy: a HEAD says what the object is
        now. The written version, if it still is the current one, is served from the cache
        (as a revalidated entry: one request went upstream); another version is a miss like
        any, and so is a HEAD that fails: the request then takes the cold path, which answers
        as it would have without the write (the upstream's own error, say)."""
        try:
            answer = await self._reads.head(obj)
        except (UpstreamUnavailable, UpstreamBroken):
            return await self._cold(obj, want, generation)
        if answer.status != 200:
            return await self._cold(obj, want, generation)
        meta = self._meta_from_head(answer)
        self._remember(obj, meta, generation)
        if (meta.etag, meta.size) == written:
            return Resolved(meta, Source.RAM, revalidated=True)
        return Resolved(meta, Source.UPSTREAM)

    async def _revalidate(
        self, obj: ObjectId, meta: ObjectMeta, first_block: int | None, generation: int
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
            return self._keep(obj, meta, generation)
        if says_nothing_of_the_object(answer.status) and self._stale_ok:
            return self._stale(obj, meta, f"status {answer.status}")
        if first_block is None:
            return await self._described(obj, answer, generation)
        return await self._accept(obj, answer, first_block, generation, None)

    async def _ask_again(self, obj: ObjectId, meta: ObjectMeta, first_block: int | None) -> Answer:
        if first_block is None:
            return await self._reads.head(obj, meta.etag)
        return await self._reads.get(
            obj, self._block(first_block), extra={"if-none-match": meta.etag}
        )

    def _stale(self, obj: ObjectId, meta: ObjectMeta, why: str) -> Resolved:
        log.warning("revalidation of %s/%s failed (%s), serving stale", obj.bucket, obj.key, why)
        return Resolved(meta, Source.RAM, stale=True)

    async def _arriving(
        self,
        obj: ObjectId,
        span: Span,
        index: int,
        generation: int,
        head: asyncio.Task[Answer] | None,
        part: Span | None,
        claim: Claim | None,
    ) -> Resolved:
        """A cold GET whose block (or part) is handed on as it arrives (tiering/arrival.py):
        the metadata is known, and the request can be answered, once the headers are in. An
        answer that is not the bytes asked for (a refusal, a 416) is read whole and judged as
        before."""
        loop = asyncio.get_running_loop()
        heard: asyncio.Future[tuple[ObjectMeta, Arrival, Source]] = loop.create_future()

        def shape(answer: Answer) -> Arrival | None:
            if answer.status not in (200, 206) or heard.done():
                return None
            declared = answer.header(b"content-length")
            if declared is None:
                return None
            size, at, length = self._placed(answer, index, part, int(declared))
            meta = ObjectMeta.from_upstream(answer.headers, size, self._clock(), whole=False)
            arrival = Arrival(at, length, etag_md5(meta) if length == size else None)
            heard.set_result((meta, arrival, source_of(answer)))
            return arrival

        fill = self._spawn(self._arrive(obj, span, shape, heard))
        either: list[asyncio.Future[Any]] = [heard, fill]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        answer = fill.result() if not heard.done() else None
        if answer is not None:
            return await self._accept(obj, answer, index, generation, head, part, claim)
        meta, arrival, source = heard.result()
        if head is not None:
            meta = await self._merge_checksums(meta, head)
        return self._found(obj, meta, arrival, source, generation, claim)

    async def _arrive(
        self,
        obj: ObjectId,
        span: Span,
        shape: Shape,
        heard: asyncio.Future[tuple[ObjectMeta, Arrival, Source]],
    ) -> Answer | None:
        """Fetch into the arrival `shape` makes, check it, release it. Raises only while no
        arrival exists; after that, a failure is the arrival's, which its readers meet."""
        try:
            answer = await self._reads.arrive(obj, span, shape)
            if not heard.done():
                return answer
            heard.result()[1].finish()
        except BaseException as exc:
            if not heard.done():
                raise
            arrival = heard.result()[1]
            arrival.fail(exc)
            log.warning("cold fetch of %s/%s failed: %s", obj.bucket, obj.key, exc)
            if isinstance(exc, UpstreamBroken):
                await self._metas.drop(obj)  # never serve metadata of bytes that did not come
            if not isinstance(exc, Exception):
                raise
        return None

    async def _accept(
        self,
        obj: ObjectId,
        answer: Answer,
        index: int,
        generation: int,
        head: asyncio.Task[Answer] | None,
        part: Span | None = None,
        claim: Claim | None = None,
    ) -> Resolved:
        """Turn the whole answer to a ranged GET into metadata plus its block (or `part`)."""
        if answer.status == 416:
            # The block starts past the end: the object is empty or shorter than asked. Only a
            # HEAD can describe it.
            return await self._from_head(obj, generation)
        if answer.status not in (200, 206):
            await self._refused(obj, answer, answer.body)
        size, at, length = self._placed(answer, index, part, len(answer.body))
        if len(answer.body) != length:
            raise UpstreamBroken("block length differs from Content-Range")
        meta = ObjectMeta.from_upstream(answer.headers, size, self._clock(), whole=False)
        if len(answer.body) == size and not md5_matches(meta, answer.body):
            raise UpstreamBroken("the object's bytes do not match its ETag")
        if head is not None:
            meta = await self._merge_checksums(meta, head)
        piece = Piece(at, answer.body)
        return self._found(obj, meta, piece, source_of(answer), generation, claim)

    def _placed(
        self, answer: Answer, index: int, part: Span | None, received: int
    ) -> tuple[int, int, int]:
        """The object's size, and where the body of an answer to a ranged GET of block `index`
        (or of `part` of it) sits: its offset and its length."""
        total = content_range_total(answer.header(b"content-range") or "")
        size = total if answer.status == 206 and total is not None else received
        if answer.status == 200:
            index, part = 0, None
        at = part.start if part is not None else index * self._block_size
        if part is None:
            return size, at, expected_length(index, self._block_size, size)
        return size, at, min(part.end, size - 1) - part.start + 1

    def _found(
        self,
        obj: ObjectId,
        meta: ObjectMeta,
        first: Piece | Arrival,
        source: Source,
        generation: int,
        claim: Claim | None,
    ) -> Resolved:
        """Metadata from a GET, remembered, with the bytes that came (or are coming) with it."""
        arriving = first.done if isinstance(first, Arrival) else None
        persisted = self._remember(obj, meta, generation, arriving)
        length = first.length if isinstance(first, Arrival) else len(first.data)
        index = first.at // self._block_size
        whole = first.at == index * self._block_size and length == expected_length(
            index, self._block_size, meta.size
        )
        if isinstance(first, Arrival):
            resolved = Resolved(meta, source, arrival=first, whole=whole)
        elif whole:
            resolved = Resolved(meta, source, first=(index, first.data))
        else:
            resolved = Resolved(meta, source, piece=first)
        if claim is not None:
            resolved = replace(resolved, claim=claim, persisted=persisted)
        self._landed(obj, resolved)
        return resolved

    async def _from_head(self, obj: ObjectId, generation: int) -> Resolved:
        return await self._described(obj, await self._reads.head(obj), generation)

    async def _described(self, obj: ObjectId, answer: Answer, generation: int) -> Resolved:
        """Metadata from the answer to a HEAD."""
        if answer.status != 200:
            await self._refused(obj, answer, b"")
        meta = self._meta_from_head(answer)
        self._remember(obj, meta, generation)
        return Resolved(meta, Source.UPSTREAM)

    async def _refused(self, obj: ObjectId, answer: Answer, body: bytes) -> NoReturn:
        """Replay the upstream's refusal; forget the object only if it said something of it."""
        if not says_nothing_of_the_object(answer.status):
            await self._metas.drop(obj)
        raise UpstreamAnswer(answer.status, list(answer.headers), body)

    def _meta_from_head(self, answer: Answer) -> ObjectMeta:
        size = int(answer.header(b"content-length") or 0)
        return ObjectMeta.from_upstream(answer.headers, size, self._clock(), whole=True)

    async def _checksums(self, obj: ObjectId, resolved: Resolved, generation: int) -> Resolved:
        meta = await self._merge_checksums(resolved.meta, self._spawn(self._reads.head(obj)))
        if meta.checksums is not None:
            self._remember(obj, meta, generation)
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

    def _keep(self, obj: ObjectId, meta: ObjectMeta, generation: int) -> Resolved:
        fresh = meta.revalidated(self._clock())
        self._remember(obj, fresh, generation)
        return Resolved(fresh, Source.RAM, revalidated=True)

    def _remember(
        self,
        obj: ObjectId,
        meta: ObjectMeta,
        generation: int,
        arriving: asyncio.Future[bytes] | None = None,
    ) -> asyncio.Task[None] | None:
        """Keep the metadata in RAM now and on disk soon (the task that stores it): for an
        object whose first block is `arriving`, once it has arrived whole."""
        if self.generation(obj) != generation:
            return None
        self._metas.remember(obj, meta)
        if arriving is None:
            return self._spawn(self._metas.persist(obj, meta, generation))
        return self._spawn(self._persist_arrived(obj, meta, generation, arriving))

    async def _persist_arrived(
        self, obj: ObjectId, meta: ObjectMeta, generation: int, arriving: asyncio.Future[bytes]
    ) -> None:
        # Not while the block arrives: the disk thread's work would hold up the loop that is
        # sending the first bytes. And not at all for bytes that did not come.
        await asyncio.wait([arriving])
        if not arriving.cancelled() and arriving.exception() is None:
            await self._metas.persist(obj, meta, generation)

    def _block(self, index: int) -> Span:
        start = index * self._block_size
        return Span(start, start + self._block_size - 1)
