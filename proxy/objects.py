"""GET and HEAD object from the cache: the request becomes one `ReadThrough.stream` call, its
chunks the wire response.

The handler decides (`plan`): preconditions judged against validated metadata before the Range
is applied, as S3 and RFC 9110 §13.2.2 order them, then status and headers. The orchestrator
fetches; the headers go out only once the first block is in hand, so a failure that can still
be reported as an error is reported as one. After the headers, a failure can only close the
connection: a client must never mistake a truncated body for a whole one.

Where the server offers zero-copy sends, blocks of large objects that only the disk holds go out
as spans of their files (`sendfile`); elsewhere those spans are read and sent as bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass

from proxy.asgi import Headers, Receive, Send, chunk, file_chunk, respond, start
from proxy.errors import InvalidRange, PreconditionFailed, S3Error
from proxy.preconditions import Outcome, Preconditions, evaluate
from proxy.ranges import ByteRange, RangeNotSatisfiable, parse_range
from proxy.s3request import S3Request
from proxy.zerocopy import ShortFile
from tiering.blocks import ObjectId
from tiering.meta import ObjectMeta
from tiering.parts import Span, first_part
from tiering.readthrough import Body, ReadThrough, Resolved, Source, Want
from tiering.streaming import FileSpan

STATUS_BY_SOURCE = {
    Source.RAM: b"HIT-RAM",
    Source.DISK: b"HIT-DISK",
    Source.PEER: b"HIT-PEER",  # from the tiers of the fleet member that owns the block
    Source.UPSTREAM: b"MISS",
}
# RFC 9110 §15.4.5: a 304 carries the validators and caching headers a 200 would have had.
NOT_MODIFIED_HEADERS = frozenset({b"etag", b"last-modified", b"cache-control", b"expires"})
CONDITIONAL_HEADERS = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)
log = logging.getLogger("s3tier.objects")
_RANGE_START = re.compile(r"\s*bytes=([0-9]{1,19})-", re.IGNORECASE)
_ONE_RANGE = re.compile(r"\s*bytes=([0-9]{1,19})-([0-9]{1,19})?\s*", re.IGNORECASE)


async def serve(
    req: S3Request,
    headers: Mapping[str, str],
    rt: ReadThrough,
    receive: Receive,
    send: Send,
    ids: Headers,
    zero_copy: bool = False,
    for_peer: bool = False,
) -> None:
    """Answer a cacheable GET/HEAD object. `ids` are the x-amz-request-id/x-amz-id-2 headers;
    `zero_copy` says the server takes spans of open files (`proxy.asgi.file_chunk`);
    `for_peer`, that another member asks for its client (counted apart)."""
    range_header = headers.get("range")
    want_checksums = headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    is_get = req.method == "GET"
    want = Want(
        first_block_hint(range_header, rt.block_size) if is_get else None,
        want_checksums and range_header is None,
        first_part_hint(range_header, rt.block_size) if is_get else None,
        for_peer=for_peer,
    )

    def decide(resolved: Resolved) -> tuple[Reply, Span | None]:
        return plan(resolved, headers, is_get, want_checksums, ids)

    reply, body = await rt.stream(ObjectId(req.bucket, req.key), want, decide, files=True)
    if body is None:
        await respond(send, reply.status, [*reply.headers, (b"x-cache-status", reply.cache)])
        return
    try:
        cache = STATUS_BY_SOURCE[body.source] if reply.cache.startswith(b"HIT") else reply.cache
        await start(send, reply.status, [*reply.headers, (b"x-cache-status", cache)])
        await send_body(body, receive, send, zero_copy)
    finally:
        body.close()


@dataclass(frozen=True, slots=True)
class Reply:
    """The status and headers decided for an answer, and its X-Cache-Status so far."""

    status: int
    headers: Headers
    cache: bytes


def plan(
    resolved: Resolved,
    headers: Mapping[str, str],
    is_get: bool,
    want_checksums: bool,
    ids: Headers,
) -> tuple[Reply, Span | None]:
    """The answer to a request given fresh metadata, and the bytes to send with it (None: no
    body); raises 412 or 416. RFC 9110 §13.2.2: preconditions before the Range."""
    meta = resolved.meta
    cache = resolved_status(resolved)
    kept = not_modified(headers, meta, cache)
    if kept is not None:
        return Reply(304, [*kept, *ids], cache), None
    rng = choose_range(headers.get("range"), meta, cache)
    reply = Reply(206 if rng else 200, response_headers(meta, rng, want_checksums, ids), cache)
    if not is_get or meta.size == 0:
        return reply, None
    return reply, Span(*(rng.start, rng.end) if rng else (0, meta.size - 1))


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


def not_modified(headers: Mapping[str, str], meta: ObjectMeta, status: bytes) -> Headers | None:
    """Raise 412, or return the headers of a 304, or None to go on with the request."""
    if not CONDITIONAL_HEADERS.intersection(headers):
        return None
    pre = Preconditions.from_headers(headers)
    if not pre.present:
        return None
    decision = evaluate(pre, meta.etag, meta.last_modified)
    if decision.outcome is Outcome.PRECONDITION_FAILED:
        error = PreconditionFailed(Condition=decision.condition or "If-Match")
        error.headers = [(b"x-cache-status", status)]
        raise error
    if decision.outcome is Outcome.NOT_MODIFIED:
        return [(n, v) for n, v in meta.headers if n in NOT_MODIFIED_HEADERS]
    return None


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


async def send_body(body: Body, receive: Receive, send: Send, zero_copy: bool = False) -> None:
    """The body's chunks as they come. Each but the last says more follows; a body that ends
    short (a failed block) never sends its last, so the server closes the connection. After
    the first chunk, a client that disconnects stops the stream."""
    total, sent = body.span.length, 0
    gone = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        async with aclosing(body.chunks(gone.is_set)) as chunks:
            async for piece in chunks:
                sent += len(piece)
                if not isinstance(piece, FileSpan):
                    await chunk(send, piece, more=sent < total)
                elif zero_copy:
                    await file_chunk(send, piece.file, piece.offset, piece.count, sent < total)
                else:
                    await chunk(send, await asyncio.to_thread(_read_span, piece), sent < total)
                if watcher is None and sent < total:
                    watcher = asyncio.get_running_loop().create_task(
                        _watch_disconnect(receive, gone)
                    )
    finally:
        if watcher is not None:
            watcher.cancel()
    if sent < total and gone.is_set():
        # A stream cut for a failed block says so where it fails; this is the other cause.
        log.info("client gone after %d of %d bytes", sent, total)


def _read_span(span: FileSpan) -> bytes:
    data = os.pread(span.file.fileno(), span.count, span.offset)
    if len(data) != span.count:
        raise ShortFile(f"file ended {span.count - len(data)} bytes short")
    return data


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
