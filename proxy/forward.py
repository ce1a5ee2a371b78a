"""Everything not a cacheable read: forwarded upstream re-signed, streaming both ways.

The upstream's status, headers and body come back unchanged, apart from hop-by-hop headers and
the request ids, which S3 always sends and the upstream may not have (`errors.with_ids`): an
error answer is small, so it is read whole first and its `<RequestId>` goes in the header.
Request bodies go through `ClientBody`, so the upstream receives the payload the client meant.
Writes drop the cache entries of the keys they name before the request is sent and again once
the answer is in (or the request failed, when the write may or may not have happened), so a
read through the proxy after a write through it sees the write.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import ClientResponse

from proxy.asgi import Receive, Send, chunk, respond, start
from proxy.auth import Verified
from proxy.bodies import ClientBody
from proxy.errors import AccessDenied, RequestIds, S3Error, with_ids
from proxy.mutations import DELETE_BODY_LIMIT, is_delete_objects, touched
from proxy.s3request import S3Request, encode_query
from tiering.blocks import ObjectId
from tiering.signing import EMPTY_SHA256
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable, read_chunks

log = logging.getLogger("s3tier.forward")
STREAM_CHUNK_BYTES = 256 << 10
# S3's error documents are well under a kilobyte; a larger one is streamed, its ids unread.
ERROR_BODY_LIMIT = 64 << 10
# RFC 9110 §7.6.1 hop-by-hop headers, plus what the proxy's own signature replaces.
NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "expect",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }
)
NOT_RETURNED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"date"})

Invalidate = Callable[[ObjectId], Awaitable[None]]


class TooLarge(S3Error):
    status = 400
    code = "MaxMessageLengthExceeded"
    message = "Your request was too big."


async def forward(
    req: S3Request,
    headers: Mapping[str, str],
    upstream: Upstream,
    invalidate: Invalidate,
    receive: Receive,
    send: Send,
    ids: RequestIds,
    verified: Verified | None = None,
) -> None:
    out_headers = upstream_headers(headers)
    body = ClientBody(headers, receive, verified) if has_body(headers) else None
    payload: AsyncIterator[bytes] | bytes | None = None
    payload_hash = EMPTY_SHA256
    if body is not None:
        out_headers, payload_hash = body.upstream_headers(out_headers)
        payload = body.stream()
        if is_delete_objects(req):
            payload = await read_all(payload, DELETE_BODY_LIMIT)
    targets = touched(req, payload if isinstance(payload, bytes) else None)
    if verified is not None and any(
        not verified.principal.allows(t.bucket, t.key, True) for t in targets
    ):
        raise AccessDenied()
    for obj in targets:
        await invalidate(obj)
    try:
        async with upstream.open(
            req.method,
            req.upstream_path(),
            encode_query(req.query),
            out_headers,
            payload,
            payload_hash,
        ) as response:
            for obj in targets:
                await invalidate(obj)
            out = [(n, v) for n, v in response.raw_headers if n.lower() not in NOT_RETURNED]
            if req.is_object_read:
                out.append((b"x-cache-status", b"BYPASS"))
            if is_small_error(response):
                pieces = [piece async for piece in read_chunks(response, ERROR_BODY_LIMIT)]
                document = b"".join(pieces)
                await respond(send, response.status, with_ids(out, document, ids), document)
                return
            await start(send, response.status, with_ids(out, b"", ids))
            await relay(response, send, req)
    except (UpstreamUnavailable, UpstreamBroken):
        for obj in targets:
            await invalidate(obj)  # the write may or may not have happened: forget the key
        if body is not None and body.error is not None:
            raise body.error from None
        raise


async def relay(response: ClientResponse, send: Send, req: S3Request) -> None:
    try:
        async for piece in read_chunks(response, STREAM_CHUNK_BYTES):
            await chunk(send, piece)
    except UpstreamBroken as exc:
        # Leave the response unfinished: the server closes the connection and the client
        # sees the failure rather than a short body that looks whole.
        log.warning("upstream answer broke off for %s %s: %s", req.method, req.resource, exc)
        return
    await chunk(send, b"", more=False)


def is_small_error(response: ClientResponse) -> bool:
    length = response.content_length
    return response.status >= 400 and length is not None and length <= ERROR_BODY_LIMIT


def upstream_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in NOT_FORWARDED}


def has_body(headers: Mapping[str, str]) -> bool:
    return "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")


async def read_all(pieces: AsyncIterator[bytes], limit: int) -> bytes:
    parts = []
    size = 0
    async for piece in pieces:
        size += len(piece)
        if size > limit:
            raise TooLarge()
        parts.append(piece)
    return b"".join(parts)
