"""Reads of one object from the upstream: ranged GETs and HEADs, retried where that is safe.

Every read the orchestrator makes goes through here: a block or part of one (`get`, and
`pinned` for a version already known), or a HEAD. Each is idempotent, so it is retried with
backoff when no answer came, when its body broke off, or when the upstream said 500/503.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from tiering.arrival import Arrival
from tiering.blockloads import Source, source_of
from tiering.blocks import ObjectId
from tiering.parts import Span
from tiering.peers import REFUSED, Peers
from tiering.upstream import (
    Answer,
    Into,
    Sink,
    Upstream,
    UpstreamBroken,
    UpstreamUnavailable,
    object_path,
)

log = logging.getLogger("s3tier.readthrough")
CHECKSUM_MODE = {"x-amz-checksum-mode": "ENABLED"}
RETRY_STATUSES = frozenset({500, 503})
Shape = Callable[[Answer], Arrival | None]  # the arrival an answer's body is to fill, if any


class ObjectChanged(Exception):
    """The object's ETag changed while it was being read (the upstream refused If-Match)."""


def says_nothing_of_the_object(status: int) -> bool:
    """A 5xx is the upstream failing to answer (RFC 9110 §15.6), not news of the object, so it
    never makes the cache forget one. A 404 or a new ETag is news; so is a 403: access taken
    away from the proxy must not be outlived by the copy it cached (fail closed)."""
    return status >= 500


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Pauses before each retry of an idempotent upstream read; () switches retries off."""

    backoffs_s: tuple[float, ...] = (0.05, 0.25)


class UpstreamReads:
    """GET (ranged) and HEAD of objects, with the proxy's retry policy. In a fleet, a block's
    GET goes to the block's owner first (tiering/peers.py), and to the upstream if that fails."""

    def __init__(
        self,
        upstream: Upstream,
        retry: RetryConfig,
        peers: Peers | None = None,
        block_size: int = 1 << 20,
    ) -> None:
        self._upstream = upstream
        self._retry = retry
        self._peers = peers
        self._block_size = block_size

    async def get(
        self,
        obj: ObjectId,
        span: Span,
        if_match: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Answer:
        """The answer to a GET of bytes `span`, whatever its status."""
        headers = {"range": f"bytes={span.start}-{span.end}", **(extra or {})}
        if if_match is not None:
            headers["if-match"] = if_match
        return await self._call("GET", obj, headers, span.length, block=self._index(span))

    async def arrive(self, obj: ObjectId, span: Span, shape: Shape) -> Answer:
        """A GET of bytes `span` whose body, if `shape` makes an arrival of the answer's status
        and headers, goes into that arrival as it comes (tiering/arrival.py). Returns once the
        body is in: the answer, without its body if the arrival took it. A body that breaks
        off is resumed from where it stopped, pinned by If-Match to the version that began
        it; raises if that fails too (the caller fails the arrival)."""
        began: list[tuple[Answer, Arrival]] = []

        def into(answer: Answer) -> Arrival | None:
            arrival = shape(answer)
            if arrival is not None:
                began.append((answer, arrival))
            return arrival

        headers = {"range": f"bytes={span.start}-{span.end}"}
        try:
            return await self._call("GET", obj, headers, span.length, into, self._index(span))
        except UpstreamBroken:
            if not began:
                raise
        answer, arrival = began[0]
        etag = answer.header(b"etag")
        if etag is None:
            raise UpstreamBroken("the answer broke off and has no ETag to resume it by")
        rest = Span(arrival.at + arrival.filled, arrival.end)
        log.info("resuming %s/%s from byte %d", obj.bucket, obj.key, rest.start)
        arrival.write((await self.pinned(obj, etag, rest, rest.length))[0])
        return answer

    async def pinned(
        self, obj: ObjectId, etag: str, span: Span, length: int
    ) -> tuple[bytes, Source]:
        """Bytes `span` of version `etag`, `length` of them (a last block ends before the span
        does), and where they came from; or an exception: ObjectChanged when that version is
        gone."""
        answer = await self.get(obj, span, if_match=etag)
        if answer.status in (404, 412):
            # Replaced (If-Match failed) or deleted since the metadata was read: the caller
            # forgets the key and, if nothing was sent yet, answers afresh (a 404 verbatim).
            raise ObjectChanged(f"{obj.bucket}/{obj.key} changed during the read")
        # A 200 is the whole object, which is what was asked for exactly when its length is.
        if answer.status not in (200, 206) or len(answer.body) != length:
            raise UpstreamBroken(f"bytes {span.start}-{span.end}: status {answer.status}")
        return answer.body, source_of(answer)

    async def head(self, obj: ObjectId, if_none_match: str | None = None) -> Answer:
        """The answer to a HEAD asking for the full-object checksums."""
        headers = dict(CHECKSUM_MODE)
        if if_none_match is not None:
            headers["if-none-match"] = if_none_match
        return await self._call("HEAD", obj, headers, 0)

    def _index(self, span: Span) -> int:
        return span.start // self._block_size

    async def _call(
        self,
        method: str,
        obj: ObjectId,
        headers: dict[str, str],
        limit: int,
        into: Into | None = None,
        block: int | None = None,
    ) -> Answer:
        """From the owner of `block` when another member owns it, else (or when the owner
        fails before anything of its answer was streamed) from the upstream."""
        routed = None
        if self._peers is not None and block is not None:
            routed = self._peers.route(obj.bucket, obj.key, block)
        if routed is None or self._peers is None:
            return await self._retried(method, obj, headers, limit, into)
        peers, (member, peer) = self._peers, routed
        streamed: list[bool] = []
        started = time.perf_counter()
        try:
            answer = await _fetch(
                peer, "peer_block", method, obj, headers, limit, into, streamed, from_peer=True
            )
        except (UpstreamUnavailable, UpstreamBroken) as exc:
            peers.failed(member, str(exc), time.perf_counter() - started)
            if streamed:
                raise  # the caller resumes what was streamed, pinned by If-Match
        else:
            seconds = time.perf_counter() - started
            if answer.status < 500 and answer.header(REFUSED.encode()) is None:
                peers.answered(member, seconds, answer.cached)
                return answer
            peers.failed(member, f"status {answer.status}", seconds)
        return await self._retried(method, obj, headers, limit, into)

    async def _retried(
        self,
        method: str,
        obj: ObjectId,
        headers: dict[str, str],
        limit: int,
        into: Into | None = None,
    ) -> Answer:
        """A broken body is retried too because `fetch` holds the whole answer before returning
        it: none of its bytes has reached anyone yet. Not so a body that went `into` a sink
        as it came: that one is the caller's to resume. A block after the first is pinned by
        If-Match, so a retry cannot return another version's bytes."""
        operation = "get_block" if method == "GET" else "head"
        streamed: list[bool] = []
        for attempt, pause in enumerate((*self._retry.backoffs_s, None)):
            try:
                answer = await _fetch(
                    self._upstream, operation, method, obj, headers, limit, into, streamed
                )
            except (UpstreamUnavailable, UpstreamBroken):
                if pause is None or streamed:
                    raise
            else:
                if answer.status not in RETRY_STATUSES or pause is None:
                    return answer
            path = object_path(obj.bucket, obj.key)
            log.info("retrying %s %s (attempt %d)", method, path, attempt + 2)
            await asyncio.sleep(pause * (0.5 + random.random()))
        raise AssertionError("unreachable")


async def _fetch(
    source: Upstream,
    operation: str,
    method: str,
    obj: ObjectId,
    headers: dict[str, str],
    limit: int,
    into: Into | None,
    streamed: list[bool],
    from_peer: bool = False,
) -> Answer:
    """One exchange with `source`; `streamed` gains an entry once a body goes `into` a sink.
    A member's answer says whether it came from that member's tiers (`Answer.cached`): its
    X-Cache-Status, trusted from a member only (an upstream could be any cache)."""

    def marked(answer: Answer) -> Answer:
        status = answer.header(b"x-cache-status") if from_peer else None
        return replace(answer, cached=True) if status and status.startswith("HIT") else answer

    def watched(answer: Answer) -> Sink | None:
        sink = into(marked(answer)) if into is not None else None
        if sink is not None:
            streamed.append(True)
        return sink

    answer = await source.fetch(
        method, object_path(obj.bucket, obj.key), dict(headers), max(limit, 1 << 16),
        operation=operation, into=watched if into is not None else None,
    )  # fmt: skip
    return marked(answer)
