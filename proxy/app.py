"""The ASGI application: one lean entry point for the whole S3 surface, no framework per request.

Routing is two-way: cacheable object reads go to `objects`, everything else to `forward`.
Every error reaches the client here, in one place, in S3's own format.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass

from proxy import forward, objects, uploads
from proxy.access import authorize
from proxy.asgi import ASGIApp, Headers, Message, Receive, Scope, Send, header_map, respond
from proxy.auth import Keyring, Verified, verify
from proxy.errors import (
    S3Error,
    ServiceUnavailable,
    UpstreamAnswer,
    new_host_id,
    new_request_id,
    render,
)
from proxy.s3request import S3Request, check_wire
from tiering.metrics import Metrics, operation_of
from tiering.readthrough import ReadThrough
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable

log = logging.getLogger("s3tier.app")
ADMIN_PREFIX = b"/_s3tier/"
# The request id of the request being answered, for log lines (also its x-amz-request-id).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
RESULT_NAMES = {
    b"HIT-RAM": "hit_ram",
    b"HIT-DISK": "hit_disk",
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
    if raw_path.startswith(ADMIN_PREFIX):
        if raw_path == ADMIN_PREFIX + b"healthz" or c.admin is None:
            await _admin(raw_path, send)  # the liveness probe stays on the lean path
        else:
            await c.admin(scope, receive, send)
        return
    started = time.perf_counter()
    tracked = Tracked(send)
    request_id = new_request_id()
    token = REQUEST_ID.set(request_id)
    metrics = c.metrics
    if metrics is not None:
        metrics.in_flight.inc()
    try:
        operation = await _answer(c, scope, raw_path, request_id, receive, tracked)
    finally:
        REQUEST_ID.reset(token)
        if metrics is not None:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            metrics.request(operation, tracked.status or 499, tracked.result, elapsed)


async def _answer(
    c: Components, scope: Scope, raw_path: bytes, request_id: str, receive: Receive, send: Tracked
) -> str:
    """Answer one S3 request; returns its operation name for the metrics."""
    method: str = scope["method"]
    ids: Headers = [
        (b"x-amz-request-id", request_id.encode()),
        (b"x-amz-id-2", new_host_id().encode()),
    ]
    headers = header_map(scope["headers"])
    resource = raw_path.decode("latin-1")
    req: S3Request | None = None
    verified: Verified | None = None
    operation = "other"
    try:
        check_wire(method, scope.get("http_version", "1.1"), scope["headers"])
        req = S3Request.parse(method, raw_path, scope["query_string"], headers, c.base_domain)
        resource = req.resource
        operation = operation_of(method, req.bucket, req.key, (k for k, _ in req.query))
        if c.keyring is not None:
            verified = verify(
                method, raw_path, scope["query_string"], headers, c.keyring, time.time(),
                expected_region=c.region,
            )  # fmt: skip
            authorize(req, headers, verified.principal)
        await _route(c, req, headers, verified, receive, send, ids)
    except UpstreamAnswer as answer:
        if not send.started and req is not None:
            await _replay(answer, req, headers, verified, receive, send, c)
    except S3Error as error:
        if not send.started:
            await _error(send, error, method, resource, ids, forward.has_body(headers))
    except (UpstreamUnavailable, UpstreamBroken) as exc:
        log.warning("upstream failure for %s %s: %s", method, resource, exc)
        if not send.started:
            unavailable = ServiceUnavailable(f"Upstream unavailable: {exc}")
            await _error(send, unavailable, method, resource, ids, forward.has_body(headers))
    return operation


async def _route(
    c: Components,
    req: S3Request,
    headers: dict[str, str],
    verified: Verified | None,
    receive: Receive,
    send: Send,
    ids: Headers,
) -> None:
    if req.cacheable:
        await objects.serve(req, headers, c.readthrough, receive, send, ids)
    elif uploads.is_put_object(req, headers):
        await uploads.put_object(
            req, headers, c.readthrough, c.upstream, c.spool_dir, c.put_cache_max_bytes,
            receive, send, verified,
        )  # fmt: skip
    else:
        await forward.forward(
            req, headers, c.upstream, c.readthrough.invalidate, receive, send, verified
        )


async def _replay(
    answer: UpstreamAnswer,
    req: S3Request,
    headers: dict[str, str],
    verified: Verified | None,
    receive: Receive,
    send: Send,
    c: Components,
) -> None:
    """The upstream's own refusal, verbatim. A GET whose miss was looked up with a HEAD got an
    answer without its error document, so it is asked again as the client asked it."""
    if req.method == "GET" and not answer.body:
        invalidate = c.readthrough.invalidate
        await forward.forward(req, headers, c.upstream, invalidate, receive, send, verified)
        return
    out = [(n, v) for n, v in answer.headers if n.lower() not in NOT_REPLAYED]
    out.append((b"x-cache-status", b"MISS"))
    await respond(send, answer.status, out, b"" if req.method == "HEAD" else answer.body)


async def _error(
    send: Send, error: S3Error, method: str, resource: str, ids: Headers, had_body: bool = False
) -> None:
    request_id = ids[0][1].decode()
    body = render(error, resource, request_id, ids[1][1].decode())
    headers: Headers = [(b"content-type", b"application/xml"), *ids, *error.headers]
    # A HEAD error has no body, but its Content-Length is still the one GET would have had.
    headers.append((b"content-length", str(len(body)).encode()))
    if had_body:
        # The request body may be unread: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await respond(send, error.status, headers, b"" if method == "HEAD" else body)


async def _admin(raw_path: bytes, send: Send) -> None:
    if raw_path == ADMIN_PREFIX + b"healthz":
        await respond(
            send, 200, [(b"content-type", b"text/plain"), (b"content-length", b"2")], b"ok"
        )
        return
    await respond(
        send, 404, [(b"content-type", b"text/plain"), (b"content-length", b"9")], b"not found"
    )
