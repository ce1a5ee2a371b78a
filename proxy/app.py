"""The ASGI application: one lean entry point for the whole S3 surface, no framework per request.

Routing is two-way: cacheable object reads go to `objects`, everything else to `forward`.
Every error reaches the client here, in one place, in S3's own format, with the request ids S3
sends; what nothing expected ends in one catch-all (`_unexpected`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass

from proxy import forward, objects, uploads
from proxy.access import authorize
from proxy.asgi import (
    ASGIApp,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    header_map,
    offers_zero_copy,
    respond,
)
from proxy.auth import Keyring, Verified, verify
from proxy.errors import (
    InternalError,
    RequestIds,
    S3Error,
    ServiceUnavailable,
    UpstreamAnswer,
    render,
    with_ids,
)
from proxy.preconditions import upstream_decides_range
from proxy.s3request import S3Request, check_wire
from tiering.blocks import ObjectId
from tiering.metrics import Metrics, operation_of
from tiering.peerauth import HEADER
from tiering.peerauth import verify as peer_verify
from tiering.peers import FOR_PEER, PEER_PREFIX, REFUSED
from tiering.readthrough import ReadThrough
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable

log = logging.getLogger("s3tier.app")
ADMIN_PREFIX = b"/_s3tier/"
PEER_PATH = PEER_PREFIX.encode() + b"/"
PEER_HEADER = HEADER.encode()
# The request id of the request being answered, for log lines (also its x-amz-request-id).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
RESULT_NAMES = {
    b"HIT-RAM": "hit_ram",
    b"HIT-DISK": "hit_disk",
    b"HIT-PEER": "hit_peer",
    b"MISS": "miss",
    b"REVALIDATED": "revalidated",
    b"STALE": "stale",
    b"BYPASS": "bypass",
}
NOT_REPLAYED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"date"})


@dataclass(slots=True)
class Components:
    """What a request needs, built at start-up by the composition root."""

    readthrough: ReadThrough
    upstream: Upstream
    base_domain: str
    spool_dir: str | None = None
    put_cache_max_bytes: int = 0
    keyring: Keyring | None = None  # None: --auth none, requests are not verified
    region: str = "us-east-1"
    admin: ASGIApp | None = None  # the FastAPI app under /_s3tier/
    metrics: Metrics | None = None
    peer_secret: bytes | None = None  # in a fleet: what members sign their requests with


@dataclass(slots=True)
class Exchange:
    """One S3 request being answered: what its error answers, log lines and metrics need,
    filled in as the request is understood."""

    method: str
    resource: str
    ids: RequestIds
    operation: str = "other"
    had_body: bool = False  # the request declared a body, which may be left unread


class Tracked:
    """A `send` that remembers the status and X-Cache-Status it sent: after the start, errors
    can only close the connection, and the metrics want both."""

    __slots__ = ("_send", "result", "started", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = 0
        self.result = "none"

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            for name, value in message["headers"]:
                if name == b"x-cache-status":
                    self.result = RESULT_NAMES.get(value, "none")
        await self._send(message)


async def handle(c: Components, scope: Scope, receive: Receive, send: Send) -> None:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    if raw_path.startswith(PEER_PATH):
        await _peer(c, scope, raw_path, receive, send)
        return
    if raw_path.startswith(ADMIN_PREFIX):
        if raw_path == ADMIN_PREFIX + b"healthz" or c.admin is None:
            await _admin(raw_path, send)  # the liveness probe stays on the lean path
        else:
            await c.admin(scope, receive, send)
        return
    await _request(c, scope, raw_path, receive, send)


async def _peer(c: Components, scope: Scope, raw_path: bytes, receive: Receive, send: Send) -> None:
    """Another member asking for a block this node owns (tiering/peers.py): answered as a
    client's GET of the same range would be, without the client checks (the asking member
    made them), from this node's tiers or the upstream and never from another member. A
    request that does not carry the fleet's signature learns nothing but a bare 403."""
    method = scope["method"]
    signed = next((v for n, v in scope["headers"] if n == PEER_HEADER), b"").decode("latin-1")
    if (
        c.peer_secret is None
        or method not in ("GET", "HEAD", "POST")
        or not peer_verify(c.peer_secret, method, raw_path.decode("latin-1"), signed, time.time())
    ):
        await respond(send, 403, [(REFUSED.encode(), b"1"), (b"content-length", b"0")], b"")
        return
    path = raw_path[len(PEER_PREFIX) :]
    token = FOR_PEER.set(True)
    try:
        if method == "POST":  # a write through that member changed this object: forget it
            req = S3Request.parse("GET", path, b"", header_map(scope["headers"]), c.base_domain)
            await c.readthrough.invalidate(ObjectId(req.bucket, req.key))
            await respond(send, 204, [], b"")
        else:
            await _request(c, scope, path, receive, send, trusted=True)
    finally:
        FOR_PEER.reset(token)


async def _request(
    c: Components, scope: Scope, raw_path: bytes, receive: Receive, send: Send,
    trusted: bool = False,
) -> None:  # fmt: skip
    started = time.perf_counter()
    tracked = Tracked(send)
    exchange = Exchange(scope["method"], raw_path.decode("latin-1"), RequestIds.new())
    token = REQUEST_ID.set(exchange.ids.request_id)
    metrics = c.metrics
    if metrics is not None:
        metrics.in_flight.inc()
    try:
        await _answer(c, scope, raw_path, exchange, receive, tracked, trusted)
    except (Exception, asyncio.CancelledError) as exc:
        # CancelledError too: whether a shutdown cancelled this request or a fetch it waited
        # on was cancelled, the request ends here, answered or cut off, and nothing above
        # would do better than a bare 500 and a second traceback.
        await _unexpected(exc, exchange, tracked, metrics)
    finally:
        REQUEST_ID.reset(token)
        if metrics is not None:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            if trusted:  # another member's block request, counted apart from clients'
                metrics.served_peer(tracked.result)
            else:
                metrics.request(exchange.operation, tracked.status or 499, tracked.result, elapsed)


async def _answer(
    c: Components, scope: Scope, raw_path: bytes, exchange: Exchange, receive: Receive,
    send: Tracked, trusted: bool = False,
) -> None:  # fmt: skip
    """Answer one S3 request, turning every expected failure into S3's answer for it."""
    method = exchange.method
    headers = header_map(scope["headers"])
    exchange.had_body = forward.has_body(headers)
    req: S3Request | None = None
    verified: Verified | None = None
    try:
        check_wire(method, scope.get("http_version", "1.1"), scope["headers"])
        req = S3Request.parse(method, raw_path, scope["query_string"], headers, c.base_domain)
        exchange.resource = req.resource
        exchange.operation = operation_of(method, req.bucket, req.key, (k for k, _ in req.query))
        if c.keyring is not None and not trusted:
            verified = verify(
                method, raw_path, scope["query_string"], headers, c.keyring, time.time(),
                expected_region=c.region,
            )  # fmt: skip
            authorize(req, headers, verified.principal)
        await _route(
            c, req, headers, verified, receive, send, exchange.ids, offers_zero_copy(scope),
            trusted,
        )  # fmt: skip
    except UpstreamAnswer as answer:
        if not send.started and req is not None:
            await _replay(answer, req, headers, verified, receive, send, c, exchange.ids)
    except S3Error as error:
        if not send.started:
            await _error(send, error, exchange)
    except (UpstreamUnavailable, UpstreamBroken) as exc:
        log.warning("upstream failure for %s %s: %s", method, exchange.resource, exc)
        if not send.started:
            await _error(send, ServiceUnavailable(f"Upstream unavailable: {exc}"), exchange)


async def _route(
    c: Components,
    req: S3Request,
    headers: dict[str, str],
    verified: Verified | None,
    receive: Receive,
    send: Send,
    ids: RequestIds,
    files: bool,
    for_peer: bool = False,
) -> None:
    if req.cacheable and not upstream_decides_range(headers):
        await objects.serve(
            req, headers, c.readthrough, receive, send, ids.headers, files, for_peer
        )
    elif uploads.is_put_object(req, headers):
        await uploads.put_object(
            req, headers, c.readthrough, c.upstream, c.spool_dir, c.put_cache_max_bytes,
            receive, send, verified, ids,
        )  # fmt: skip
    else:
        await forward.forward(
            req, headers, c.upstream, c.readthrough.invalidate, receive, send, ids, verified
        )


async def _replay(
    answer: UpstreamAnswer,
    req: S3Request,
    headers: dict[str, str],
    verified: Verified | None,
    receive: Receive,
    send: Send,
    c: Components,
    ids: RequestIds,
) -> None:
    """The upstream's own refusal, verbatim. A GET whose miss was looked up with a HEAD got an
    answer without its error document, so it is asked again as the client asked it."""
    if req.method == "GET" and not answer.body:
        invalidate = c.readthrough.invalidate
        await forward.forward(req, headers, c.upstream, invalidate, receive, send, ids, verified)
        return
    out = [(n, v) for n, v in answer.headers if n.lower() not in NOT_REPLAYED]
    out.append((b"x-cache-status", b"MISS"))
    out = with_ids(out, answer.body, ids)
    await respond(send, answer.status, out, b"" if req.method == "HEAD" else answer.body)


async def _error(send: Send, error: S3Error, exchange: Exchange) -> None:
    body = render(error, exchange.resource, exchange.ids)
    headers: Headers = [(b"content-type", b"application/xml"), *exchange.ids.headers]
    headers.extend(error.headers)
    # A HEAD error has no body, but its Content-Length is still the one GET would have had.
    headers.append((b"content-length", str(len(body)).encode()))
    if exchange.had_body:
        # The request body may be unread: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await respond(send, error.status, headers, b"" if exchange.method == "HEAD" else body)


async def _unexpected(
    exc: BaseException, exchange: Exchange, send: Tracked, metrics: Metrics | None
) -> None:
    """The one catch-all, for what nothing expected: a bug, an object replaced again while a
    read was retried, a cancellation. Logged once with its traceback and counted; the client
    gets S3's InternalError (which SDKs retry), or, once the answer has begun, a closed
    connection: returning without the final body message makes the server close it, so a cut
    body never looks whole."""
    log.error(
        "unexpected %s answering %s %s", type(exc).__name__, exchange.method,
        exchange.resource, exc_info=exc,
    )  # fmt: skip
    if metrics is not None:
        metrics.unexpected(exchange.operation)
    if send.started:
        return
    exchange.had_body = True  # the request's state is unknown: its connection is not reused
    await _error(send, InternalError(), exchange)


async def _admin(raw_path: bytes, send: Send) -> None:
    if raw_path == ADMIN_PREFIX + b"healthz":
        await respond(
            send, 200, [(b"content-type", b"text/plain"), (b"content-length", b"2")], b"ok"
        )
        return
    await respond(
        send, 404, [(b"content-type", b"text/plain"), (b"content-length", b"9")], b"not found"
    )
