"""GET and HEAD object from the cache: resolve, check preconditions, pick the range, stream blocks.

The order follows S3 and RFC 9110 §13.2.2: preconditions are judged against validated metadata
before the Range is applied, and the headers go out only once the first block is in hand, so a
failure that can still be reported as an error is reported as one. After the headers, a failure
can only close the connection: a client must never mistake a truncated body for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping

from proxy.asgi import Headers, Receive, Send, chunk, respond, start
from proxy.errors import InvalidRange, PreconditionFailed, S3Error
from proxy.preconditions import Outcome, Preconditions, evaluate
from proxy.ranges import ByteRange, RangeNotSatisfiable, parse_range
from proxy.s3request import S3Request
from tiering.blocks import ObjectId, block_span
from tiering.meta import ObjectMeta
from tiering.parts import Piece, Span, first_part, needed
from tiering.readthrough import ObjectChanged, ReadThrough, Resolved, Source
from tiering.upstream import UpstreamBroken, UpstreamUnavailable

log = logging.getLogger("s3tier.objects")
SHORT_RESPONSE_BLOCKS = 2  # answers this short are noted once, as a single read
READ_AHEAD_BLOCKS = 2  # per stream; read-ahead beyond it is the prefetcher's, within budget
STATUS_BY_SOURCE = {Source.RAM: b"HIT-RAM", Source.DISK: b"HIT-DISK", Source.UPSTREAM: b"MISS"}
# RFC 9110 §15.4.5: a 304 carries the validators and caching headers a 200 would have had.
NOT_MODIFIED_HEADERS = frozenset({b"etag", b"last-modified", b"cache-control", b"expires"})
CONDITIONAL_HEADERS = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)
_RANGE_START = re.compile(r"\s*bytes=([0-9]{1,19})-", re.IGNORECASE)
_ONE_RANGE = re.compile(r"\s*bytes=([0-9]{1,19})-([0-9]{1,19})?\s*", re.IGNORECASE)


async def serve(
    req: S3Request,
    headers: Mapping[str, str],
    rt: ReadThrough,
    receive: Receive,
    send: Send,
    ids: Headers,
) -> None:
    """Answer a cacheable GET/HEAD object. `ids` are the x-amz-request-id/x-amz-id-2 headers."""
    obj = ObjectId(req.bucket, req.key)
    try:
        await _serve_once(req, obj, headers, rt, receive, send, ids)
    except ObjectChanged:
        # Replaced between metadata and first block: forget it and answer for the new version.
        await rt.invalidate(obj)
        await _serve_once(req, obj, headers, rt, receive, send, ids)


async def _serve_once(
    req: S3Request,
    obj: ObjectId,
    headers: Mapping[str, str],
    rt: ReadThrough,
    receive: Receive,
    send: Send,
    ids: Headers,
) -> None:
    range_header = headers.get("range")
    want_checksums = headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    is_get = req.method == "GET"
    first_hint = first_block_hint(range_header, rt.block_size) if is_get else None
    part = first_part_hint(range_header, rt.block_size) if is_get else None
    resolved = await rt.resolve(obj, first_hint, want_checksums and range_header is None, part)
    meta = resolved.meta
    status = resolved_status(resolved)
    if await answer_preconditions(headers, meta, status, send, ids):
        return
    rng = choose_range(range_header, meta, status)
    out = response_headers(meta, rng, want_checksums, ids)
    if not is_get or meta.size == 0:
        await respond(send, 206 if rng else 200, [*out, (b"x-cache-status", status)])
        return
    span = Span(*(rng.start, rng.end) if rng else (0, meta.size - 1))
    indices = block_span(span.start, span.end, rt.block_size)
    first, source = await first_piece(rt, obj, resolved, indices[0], span)
    if status.startswith(b"HIT"):
        status = STATUS_BY_SOURCE[max(resolved.source, source)]
    await start(send, 206 if rng else 200, [*out, (b"x-cache-status", status)])
    piece = first.slice(span.start, span.end)
    rt.account(source, len(piece))
    if len(indices) <= SHORT_RESPONSE_BLOCKS:
        # A short answer is one read to read-ahead, even when it crosses a block boundary:
        # a random 64 KiB range must not look like a reader walking forward.
        await chunk(send, piece, more=len(indices) > 1)
        if len(indices) > 1:
            await stream_rest(rt, obj, meta, indices[1:], span, receive, send, False)
        rt.note_read(obj, meta, span.start, span.end, span)
        return
    await chunk(send, piece)
    rt.note_read(obj, meta, span.start, (indices[0] + 1) * rt.block_size - 1, span)
    await stream_rest(rt, obj, meta, indices[1:], span, receive, send, True)


def first_block_hint(range_header: str | None, block_size: int) -> int | None:
    """The block a cold GET should fetch first: where the range starts, or None for a suffix
    range, whose position is unknown until the size is."""
    if range_header is None:
        return 0
    match = _RANGE_START.match(range_header)
    if match:
        return int(match.group(1)) // block_size
    return None if range_header.strip().lower().startswith("bytes=-") else 0


def first_part_hint(range_header: str | None, block_size: int) -> Span | None:
    """What a cold GET of a single range needs of its first block, if not all of it: a cold
    fill then fetches only that (tiering/parts.py). None for anything else."""
    match = _ONE_RANGE.fullmatch(range_header or "")
    if match is None:
        return None
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else None
    return first_part(start, end, block_size) if end is None or end >= start else None


def resolved_status(resolved: Resolved) -> bytes:
    if resolved.stale:
        return b"STALE"
    if resolved.revalidated:
        return b"REVALIDATED"
    return STATUS_BY_SOURCE[resolved.source]


async def answer_preconditions(
    headers: Mapping[str, str], meta: ObjectMeta, status: bytes, send: Send, ids: Headers
) -> bool:
    """Raise 412, or send 304 and return True, or return False to go on with the request."""
    if not CONDITIONAL_HEADERS.intersection(headers):
        return False
    pre = Preconditions.from_headers(headers)
    if not pre.present:
        return False
    decision = evaluate(pre, meta.etag, meta.last_modified)
    if decision.outcome is Outcome.PRECONDITION_FAILED:
        error = PreconditionFailed(Condition=decision.condition or "If-Match")
        error.headers = [(b"x-cache-status", status)]
        raise error
    if decision.outcome is Outcome.NOT_MODIFIED:
        kept = [(n, v) for n, v in meta.headers if n in NOT_MODIFIED_HEADERS]
        await respond(send, 304, [*kept, *ids, (b"x-cache-status", status)])
        return True
    return False


def choose_range(range_header: str | None, meta: ObjectMeta, status: bytes) -> ByteRange | None:
    try:
        return parse_range(range_header, meta.size)
    except RangeNotSatisfiable as exc:
        error: S3Error = InvalidRange(RangeRequested=exc.requested, ActualObjectSize=str(meta.size))
        error.headers = [(b"x-cache-status", status)]
        raise error from exc


def response_headers(
    meta: ObjectMeta, rng: ByteRange | None, want_checksums: bool, ids: Headers
) -> Headers:
    out = list(meta.headers)
    # S3 sends the full-object checksum only for the whole object, and only when asked; a 206
    # carrying it would make boto3 reject a correct slice.
    if rng is None and want_checksums and meta.checksums:
        out.extend(meta.checksums)
    if rng is not None:
        out.append((b"content-range", rng.content_range(meta.size).encode()))
    length = rng.length if rng is not None else meta.size
    out.append((b"content-length", str(length).encode()))
    out.extend(ids)
    return out


async def first_piece(
    rt: ReadThrough, obj: ObjectId, resolved: Resolved, index: int, span: Span
) -> tuple[Piece, Source]:
    """What `span` needs of its first block: what came with the metadata, or RAM, or more."""
    base = index * rt.block_size
    if resolved.first is not None and resolved.first[0] == index:
        return Piece(base, resolved.first[1]), Source.UPSTREAM
    need = needed(index, rt.block_size, resolved.meta.size, span.start, span.end)
    if resolved.piece is not None and resolved.piece.covers(need):
        return resolved.piece, Source.UPSTREAM
    data = rt.cached_block(obj, resolved.meta, index)
    if data is not None:
        return Piece(base, data), Source.RAM
    return await rt.part(obj, resolved.meta, index, span.start, span.end)


async def stream_rest(
    rt: ReadThrough,
    obj: ObjectId,
    meta: ObjectMeta,
    indices: range,
    span: Span,
    receive: Receive,
    send: Send,
    note_blocks: bool,
) -> None:
    """The blocks after the first, a few loading ahead; on failure the connection is cut.
    With `note_blocks`, each block sent is a read read-ahead learns from (long streams)."""
    gone = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, gone))
    try:
        async for index, got, source in _read_ahead(rt, obj, meta, indices, span):
            if gone.is_set():
                return
            piece = got.slice(span.start, span.end)
            rt.account(source, len(piece))
            await chunk(send, piece, more=index != indices[-1])
            if note_blocks:
                sent = needed(index, rt.block_size, meta.size, span.start, span.end)
                rt.note_read(obj, meta, sent.start, sent.end, span)
    except (ObjectChanged, UpstreamBroken, UpstreamUnavailable) as exc:
        # Returning without the last body message makes the server close the connection, so
        # the client sees a short read instead of a 200 that looks complete.
        log.warning("aborting stream of %s/%s: %s", obj.bucket, obj.key, exc)
    finally:
        watcher.cancel()


async def _read_ahead(
    rt: ReadThrough, obj: ObjectId, meta: ObjectMeta, indices: range, span: Span
) -> AsyncIterator[tuple[int, Piece, Source]]:
    """The blocks of `indices` in order, a few loading ahead; never one outside them, so a
    stream fetches nothing past its range even when its client stops early."""
    loop = asyncio.get_running_loop()
    window: deque[tuple[int, asyncio.Task[tuple[Piece, Source]]]] = deque()
    upcoming = iter(indices)

    def load(index: int) -> tuple[int, asyncio.Task[tuple[Piece, Source]]]:
        return index, loop.create_task(rt.part(obj, meta, index, span.start, span.end))

    try:
        for index in upcoming:
            window.append(load(index))
            if len(window) >= READ_AHEAD_BLOCKS:
                break
        while window:
            index, task = window.popleft()
            got, source = await task
            following = next(upcoming, None)
            if following is not None:
                window.append(load(following))
            yield index, got, source
    finally:
        for _, task in window:
            task.cancel()


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
