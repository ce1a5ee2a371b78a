"""Everything not a cacheable read: forwarded upstream re-signed, streaming both ways.

The upstream's status, headers and body come back unchanged, apart from hop-by-hop headers.
Writes drop the cache entries of the keys they name before the request is sent and again once
the answer is in, so a read through the proxy after a write through it sees the write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import ClientResponse

from proxy.asgi import Headers, Receive, Send, chunk, start
from proxy.errors import S3Error
from proxy.mutations import DELETE_BODY_LIMIT, is_delete_objects, touched
from proxy.s3request import S3Request, encode_query
from tiering.blocks import ObjectId
from tiering.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD
from tiering.upstream import Upstream, UpstreamBroken, read_chunks

log = logging.getLogger("s3tier.forward")
STREAM_CHUNK_BYTES = 256 << 10
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
# Payload hashes the upstream can verify as they are: a hex SHA-256 of the body, or one of the
# streaming/unsigned markers whose framing travels unchanged in the body.
_PAYLOAD_HASH = re.compile(r"^([0-9a-f]{64}|UNSIGNED-PAYLOAD|STREAMING-[A-Z0-9-]+)$")

Invalidate = Callable[[ObjectId], Awaitable[None]]


class TooLarge(S3Error):
    status = 400
    code = "MaxMessageLengthExceeded"
    message = "Your request was too big."


async def forward(
    req: S3Request,
    scope_headers: Headers,
    upstream: Upstream,
    invalidate: Invalidate,
    receive: Receive,
    send: Send,
) -> None:
    headers = upstream_headers(scope_headers)
    has_body = "content-length" in headers or _chunked(scope_headers)
    body: AsyncIterator[bytes] | bytes | None = request_body(receive) if has_body else None
    if body is not None and is_delete_objects(req):
        body = await read_all(receive, DELETE_BODY_LIMIT)
    targets = touched(req, body if isinstance(body, bytes) else None)
    for obj in targets:
        await invalidate(obj)
    payload = payload_hash(headers.pop("x-amz-content-sha256-client", None), has_body)
    async with upstream.open(
        req.method, req.upstream_path(), encode_query(req.query), headers, body, payload
    ) as response:
        for obj in targets:
            await invalidate(obj)
        out = [(n, v) for n, v in response.raw_headers if n.lower() not in NOT_RETURNED]
        if req.is_object_read:
            out.append((b"x-cache-status", b"BYPASS"))
        await start(send, response.status, out)
        await relay(response, send, req)


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


def upstream_headers(scope_headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "x-amz-content-sha256":
            out["x-amz-content-sha256-client"] = value
        elif name not in NOT_FORWARDED:
            out[name] = f"{out[name]},{value}" if name in out else value
    return out


def payload_hash(client_value: str | None, has_body: bool) -> str:
    if client_value is not None and _PAYLOAD_HASH.match(client_value):
        return client_value
    return UNSIGNED_PAYLOAD if has_body else EMPTY_SHA256


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The client's body as it arrives; a client that leaves mid-upload aborts the upstream
    request, so the upstream never stores a partial object."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected during upload")
        piece = message.get("body", b"")
        if piece:
            yield piece
        if not message.get("more_body", False):
            return


async def read_all(receive: Receive, limit: int) -> bytes:
    parts = []
    size = 0
    async for piece in request_body(receive):
        size += len(piece)
        if size > limit:
            raise TooLarge()
        parts.append(piece)
    return b"".join(parts)


def _chunked(scope_headers: Headers) -> bool:
    return any(
        n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in scope_headers
    )
