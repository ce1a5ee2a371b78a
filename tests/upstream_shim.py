"""A recording, fault-injecting HTTP proxy between s3tier and the real upstream, for tests.

It runs on its own event loop in a background thread of the test process, so tests read what
it recorded directly. It forwards every request unchanged to the target (moto) and can be told
to misbehave on the next matching request(s), which is what a troubled upstream looks like from
s3tier:

    break_next          the answer breaks off after k body bytes (Content-Length or chunked),
                        with a FIN, or with an RST if `reset`
    stall_next          the answer is held back before its first byte
    reset_next          the connection is reset (RST) before any answer; nothing is forwarded
    close_next          the connection is closed (FIN) before any answer; nothing is forwarded
    drop_answer_next    forwarded (the upstream acts on it), then closed before any answer
    answer_next         a scripted answer (e.g. 503 SlowDown XML) instead of the upstream's
    drip_next           the body trickles, a few bytes at a time with pauses between them
    wrong_length_next   more Content-Length declared than sent, then the connection closes
    short_body_next     a well-framed body shorter than the upstream's (Content-Length agrees)
    before_next         an action (say, replacing the object upstream) runs, then the request
                        is forwarded as usual: a race with another writer, made certain

Each takes `times` (default 1; None: every matching request from now on).

`ScriptedUpstream` is a stub upstream for what moto cannot do: answers scripted per request
(409 ConditionalRequestConflict, partNumber GETs, If-Match on CompleteMultipartUpload), and
synthetic objects of any size served and accepted without holding them, for memory tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from yarl import URL

from tests.harness import free_port

HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass
class Recorded:
    method: str
    path: str  # raw path and query, as received
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Fault:
    """For the first request that matches (the first `times`; None: all of them): do `kind`.

    The default kind, "forward", holds the upstream's answer back for `stall_s`, then breaks it
    after `after_bytes` of its body (None: delivers it whole). The other kinds are listed in the
    module docstring; their parameters are the fields below `kind`.
    """

    matches: Callable[[Recorded], bool]
    after_bytes: int | None
    stall_s: float = 0.0
    used: bool = False
    kind: str = "forward"
    times: int | None = 1
    hits: int = 0
    chunked: bool = False  # "forward": send the body chunked rather than with Content-Length
    reset: bool = False  # "forward" with after_bytes: break with an RST rather than a FIN
    status: int = 0  # "answer"
    body: bytes = b""  # "answer"
    headers: tuple[tuple[str, str], ...] = ()  # "answer"
    piece_bytes: int = 0  # "drip"
    every_s: float = 0.0  # "drip"
    extra_bytes: int = 0  # "wrong_length": declared beyond what is sent
    keep_bytes: int = 0  # "short_body": body bytes actually sent
    before: Callable[[], None] | None = None  # "forward": run (in a thread) before forwarding

    def take(self) -> None:
        self.hits += 1
        if self.times is not None and self.hits >= self.times:
            self.used = True


def s3_error_xml(code: str, message: str, resource: str = "", request_id: str = "") -> bytes:
    """An error document in S3's own format."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{request_id or 'SCRIPTED0000000'}</RequestId>"
        "<HostId>c2NyaXB0ZWQ=</HostId></Error>"
    ).encode()


SLOW_DOWN = s3_error_xml("SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR = s3_error_xml(
    "InternalError", "We encountered an internal error. Please try again."
)
XML = (("Content-Type", "application/xml"),)


@dataclass
class UpstreamShim:
    target: str
    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # How long to wait for each read from the target (None: aiohttp's default, 5 minutes in
    # all): an upstream that never answers would otherwise hold the shim's handler that long.
    read_timeout_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("shim did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def clear(self) -> None:
        self.requests.clear()

    def matching(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method) and contains in r.path
        ]

    def break_next(
        self,
        matches: Callable[[Recorded], bool],
        after_bytes: int,
        times: int | None = 1,
        reset: bool = False,
        stall_s: float = 0.0,
    ) -> Fault:
        return self._add(Fault(matches, after_bytes, stall_s, times=times, reset=reset))

    def stall_next(
        self, matches: Callable[[Recorded], bool], seconds: float, times: int | None = 1
    ) -> Fault:
        return self._add(Fault(matches, None, stall_s=seconds, times=times))

    def break_chunked_next(self, matches: Callable[[Recorded], bool], after_bytes: int) -> Fault:
        """Like break_next, with the body sent chunked (no Content-Length)."""
        return self._add(Fault(matches, after_bytes, chunked=True))

    def reset_next(self, matches: Callable[[Recorded], bool], times: int | None = 1) -> Fault:
        return self._add(Fault(matches, None, kind="reset", times=times))

    def close_next(self, matches: Callable[[Recorded], bool], times: int | None = 1) -> Fault:
        return self._add(Fault(matches, None, kind="close", times=times))

    def drop_answer_next(self, matches: Callable[[Recorded], bool], times: int | None = 1) -> Fault:
        return self._add(Fault(matches, None, kind="drop_answer", times=times))

    def answer_next(
        self,
        matches: Callable[[Recorded], bool],
        status: int,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = XML,
        times: int | None = 1,
    ) -> Fault:
        fault = Fault(matches, None, kind="answer", times=times, status=status, body=body)
        fault.headers = headers
        return self._add(fault)

    def drip_next(
        self,
        matches: Callable[[Recorded], bool],
        piece_bytes: int,
        every_s: float,
        times: int | None = 1,
    ) -> Fault:
        fault = Fault(matches, None, kind="drip", times=times)
        fault.piece_bytes, fault.every_s = piece_bytes, every_s
        return self._add(fault)

    def wrong_length_next(
        self, matches: Callable[[Recorded], bool], extra_bytes: int, times: int | None = 1
    ) -> Fault:
        fault = Fault(matches, None, kind="wrong_length", times=times, extra_bytes=extra_bytes)
        return self._add(fault)

    def short_body_next(
        self, matches: Callable[[Recorded], bool], keep_bytes: int, times: int | None = 1
    ) -> Fault:
        fault = Fault(matches, None, kind="short_body", times=times, keep_bytes=keep_bytes)
        return self._add(fault)

    def before_next(
        self, matches: Callable[[Recorded], bool], action: Callable[[], None], times: int | None = 1
    ) -> Fault:
        return self._add(Fault(matches, None, times=times, before=action))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self.read_timeout_s)
        if self.read_timeout_s is None:
            timeout = aiohttp.client.DEFAULT_TIMEOUT
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=timeout)
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await self._stopping.wait()
        await runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = Recorded(request.method, request.raw_path, dict(request.headers))
        record.started = time.monotonic()
        try:
            return await self._forward(request, record)
        finally:
            record.finished = time.monotonic()

    async def _forward(self, request: web.Request, record: Recorded) -> web.StreamResponse:
        self.requests.append(record)
        fault = next((f for f in self.faults if not f.used and f.matches(record)), None)
        if fault is not None:
            fault.take()
            if fault.before is not None:
                await asyncio.to_thread(fault.before)
            if fault.kind in ("reset", "close"):
                return _hang_up(request, reset=fault.kind == "reset")
            if fault.kind == "answer":
                record.status = fault.status
                return web.Response(
                    status=fault.status, body=fault.body, headers=dict(fault.headers)
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        url = URL(self.target + request.raw_path, encoded=True)
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as upstream:
            record.status = upstream.status
            if fault is not None and fault.kind == "drop_answer":
                await upstream.read()  # the upstream has done it; s3tier never hears so
                return _hang_up(request, reset=False)
            if fault is not None and fault.kind != "forward":
                return await _misdeliver(request, upstream, fault, record)
            if fault is not None:
                # The upstream has answered; s3tier sees nothing for a while (first-byte stall).
                await asyncio.sleep(fault.stall_s)
            out = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    out.headers.add(name, value)
            chunked = fault is not None and fault.chunked
            if upstream.content_length is not None and not chunked:
                out.content_length = upstream.content_length
            await out.prepare(request)
            async for piece in upstream.content.iter_chunked(1 << 16):
                if (
                    fault is not None
                    and fault.after_bytes is not None
                    and (record.body_bytes + len(piece) > fault.after_bytes)
                ):
                    piece = piece[: fault.after_bytes - record.body_bytes]
                    await out.write(piece)
                    record.body_bytes += len(piece)
                    await _cut(request, fault.reset)
                    return out
                await out.write(piece)
                record.body_bytes += len(piece)
            await out.write_eof()
            return out


def _hang_up(request: web.Request, reset: bool) -> web.StreamResponse:
    """Close the connection without a byte of answer: with RST (as if refused or reset), or
    with an orderly FIN (as if the server went away)."""
    transport = request.transport
    if transport is not None:
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    return web.Response(status=204)  # never sent: the transport is gone


async def _cut(request: web.Request, reset: bool) -> None:
    """Break an answer whose headers and some body were sent. An RST discards what is still
    buffered, so the bytes written go out first: the break comes after exactly those bytes."""
    transport = request.transport
    assert transport is not None
    if reset:
        for _ in range(200):
            if not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.005)
    _hang_up(request, reset)


async def _misdeliver(
    request: web.Request, upstream: aiohttp.ClientResponse, fault: Fault, record: Recorded
) -> web.StreamResponse:
    """Deliver the upstream's answer wrongly: dripped, with a false length, or cut short."""
    body = await upstream.read()
    out = web.StreamResponse(status=upstream.status)
    for name, value in upstream.headers.items():
        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
            out.headers.add(name, value)
    if fault.kind == "short_body":
        body = body[: fault.keep_bytes]
    declared = len(body) + (fault.extra_bytes if fault.kind == "wrong_length" else 0)
    out.content_length = declared
    try:
        await out.prepare(request)
        step = fault.piece_bytes if fault.kind == "drip" else max(len(body), 1)
        for start in range(0, len(body), step):
            if fault.kind == "drip" and start:
                await asyncio.sleep(fault.every_s)
            await out.write(body[start : start + step])
            record.body_bytes += len(body[start : start + step])
        if fault.kind == "wrong_length":
            assert request.transport is not None
            request.transport.close()
            return out
        await out.write_eof()
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass  # s3tier gave up on us: that is what a timeout looks like from here
    return out


# -- the scripted stub upstream -------------------------------------------------------------

# Synthetic objects are this pattern repeated; its odd length means a block served at the wrong
# offset never looks right by accident.
PATTERN = random.Random(20240607).randbytes((1 << 20) + 4099)
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def pattern_bytes(start: int, length: int) -> bytes:
    """Bytes start..start+length-1 of any synthetic object."""
    out = bytearray()
    position = start % len(PATTERN)
    while len(out) < length:
        take = min(len(PATTERN) - position, length - len(out))
        out += PATTERN[position : position + take]
        position = 0
    return bytes(out)


class PatternFile:
    """A file-like synthetic object of `size` bytes, for request bodies: holds one piece."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._offset = 0

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._offset
        size = left if size < 0 else min(size, left)
        piece = pattern_bytes(self._offset, size)
        self._offset += size
        return piece


@dataclass
class StoredPut:
    """What a PUT to the stub carried: its length, and whether every byte was the pattern's."""

    size: int = 0
    pattern_intact: bool = True
    complete: bool = False


Script = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class ScriptedUpstream:
    """A stub S3 upstream answering from a script, in a background thread of the test process.

    `on(method, path, status, body, headers)` scripts an answer for requests whose raw path
    (without the query) is `path` and, if given, whose query contains `query`; scripts are
    tried newest first. `add_object(bucket, key, size)` serves a synthetic object (GET with
    Range and If-Match, HEAD) without holding it; PUTs to keys without a script are read,
    checked against the pattern and discarded. Anything else gets 404 NoSuchKey.
    """

    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # request bodies, up to 1 MiB each
    objects: dict[str, int] = field(default_factory=dict)  # "/bucket/key" -> size
    puts: dict[str, StoredPut] = field(default_factory=dict)
    _scripts: list[tuple[str, str, str, Script]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(
        self,
        method: str,
        path: str,
        status: int,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = XML,
        query: str = "",
    ) -> None:
        async def answer(request: web.Request, _: bytes) -> web.StreamResponse:
            response = web.Response(status=status, body=body)
            for name, value in headers:
                response.headers.add(name, value)
            return response

        self._scripts.insert(0, (method, path, query, answer))

    def add_object(self, bucket: str, key: str, size: int) -> str:
        """Serve a synthetic object; returns its ETag (multipart-style: not an MD5)."""
        self.objects[f"/{bucket}/{key}"] = size
        return self.etag_of(size)

    @staticmethod
    def etag_of(size: int) -> str:
        return f'"{hashlib.md5(str(size).encode()).hexdigest()}-{max(size >> 24, 1)}"'

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("stub upstream did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await self._stopping.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = Recorded(request.method, request.raw_path, dict(request.headers))
        record.started = time.monotonic()
        self.requests.append(record)
        path, _, query = request.raw_path.partition("?")
        try:
            for method, where, wanted, script in self._scripts:
                if method == request.method and where == path and wanted in query:
                    body = await request.read()
                    self.bodies.append(body[: 1 << 20])
                    response = await script(request, body)
                    record.status = response.status
                    return response
            key = URL(path, encoded=True).path
            if request.method in ("GET", "HEAD") and key in self.objects:
                return await self._serve_object(request, key, record)
            if request.method == "PUT" and not query:
                return await self._sink(request, key, record)
            record.status = 404
            return web.Response(
                status=404, body=s3_error_xml("NoSuchKey", "The specified key does not exist.")
            )
        finally:
            record.finished = time.monotonic()

    async def _serve_object(
        self, request: web.Request, key: str, record: Recorded
    ) -> web.StreamResponse:
        size = self.objects[key]
        etag = self.etag_of(size)
        headers = {"ETag": etag, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        if request.headers.get("If-Match", etag) != etag:
            record.status = 412
            return web.Response(status=412, body=s3_error_xml("PreconditionFailed", "If-Match"))
        if request.headers.get("If-None-Match") == etag:
            record.status = 304
            return web.Response(status=304, headers=headers)
        start, end, status = 0, size - 1, 200
        found = _RANGE.fullmatch(request.headers.get("Range", ""))
        if found:
            start = int(found.group(1))
            end = min(int(found.group(2) or size - 1), size - 1)
            if start >= size:
                record.status = 416
                return web.Response(status=416, body=s3_error_xml("InvalidRange", "range"))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        record.status = status
        out = web.StreamResponse(status=status, headers=headers)
        out.content_length = end - start + 1
        await out.prepare(request)
        if request.method == "GET":
            for at in range(start, end + 1, 1 << 20):
                piece = pattern_bytes(at, min(1 << 20, end + 1 - at))
                await out.write(piece)
                record.body_bytes += len(piece)
        await out.write_eof()
        return out

    async def _sink(self, request: web.Request, key: str, record: Recorded) -> web.StreamResponse:
        stored = self.puts[key] = StoredPut()
        async for piece in request.content.iter_chunked(1 << 20):
            if piece != pattern_bytes(stored.size, len(piece)):
                stored.pattern_intact = False
            stored.size += len(piece)
        stored.complete = True
        record.status = 200
        return web.Response(status=200, headers={"ETag": self.etag_of(stored.size)})
