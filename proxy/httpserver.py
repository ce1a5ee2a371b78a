"""uvicorn's httptools protocol, with three changes: plain hits are answered before any ASGI
request exists (proxy/fastpath.py), a response's headers go out in one write with its first body
bytes, and a client gets a deadline for sending its request headers.

uvicorn writes the headers of `http.response.start` at once and the body in a second write, so
every small response costs two send syscalls (nginx makes one). Measured with py-spy on a 4 KiB
RAM hit, those two writes were the largest single cost in the process. Here a write is held until
the end of the current event-loop iteration: when the body follows in the same iteration, as it
does for every cached object, both go out in one writev; when nothing follows, the held bytes
go out on their own a moment later. Any other use of the transport sends what is held first, so
the order of bytes on the wire never changes.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from proxy.asgi import ZERO_COPY
from proxy.zerocopy import send_file


class CoalescingTransport:
    """A transport wrapper that joins a held write with the next one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def writelines(self, data: list[bytes]) -> None:
        held, self._held = self._held, None
        self._transport.writelines([held, *data] if held is not None else data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._held = None
        self._transport.writelines([held, data])

    def flush(self) -> None:
        """Give what is held to the transport now."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, is_closing) after what is held.
        self.flush()
        return getattr(self._transport, name)


# How long a client may take to send a request's headers, and how long an idle keep-alive
# connection is kept. Both are watched by one sweep per process (`Sweep`), not by a timer per
# request: uvicorn cancels and re-arms a keep-alive timer on every request, and a header deadline
# would add a second, four timer operations per hit. A client trickling one header byte a second
# is not helped by trickling: the header deadline runs from the end of the previous answer.
# Set by `configure`.
_header_timeout_s = 10.0
SWEEP_INTERVAL_S = 0.25


# Answers plain RAM hits before any ASGI machinery exists (proxy/fastpath.py); set by the app
# once its components are built, per worker process.
FastAnswer = Callable[
    [bytes, bytes, list[tuple[bytes, bytes]], bytes], "list[bytes | memoryview] | None"
]
_fast_answer: FastAnswer | None = None


def configure(header_timeout_s: float) -> None:
    """Set from the settings in each server process, before it accepts connections."""
    global _header_timeout_s
    _header_timeout_s = header_timeout_s


def install_fast_path(answer: FastAnswer | None) -> None:
    global _fast_answer
    _fast_answer = answer


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, also taking `http.response.zerocopysend` messages:
    `file` (an open file), `offset`, `count`, `more_body`, as the ASGI extension defines them."""

    async def send(self, message: Any) -> None:
        if message["type"] != ZERO_COPY:
            await super().send(message)
            return
        if not self.response_started or self.response_complete or self.chunked_encoding:
            raise RuntimeError("zero-copy body without a started Content-Length response")
        count = message["count"]
        if count > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        loop = asyncio.get_running_loop()
        try:
            await send_file(
                self.transport, loop, message["file"].fileno(), message.get("offset") or 0, count
            )
        except ConnectionError:
            self.disconnected = True
            self.transport.close()
            return
        self.expected_content_length -= count
        # What uvicorn does at the end of a body, with no bytes of its own.
        more_body = message.get("more_body", False)
        await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})


class Sweep:
    """A coarse clock and the connections' deadlines, checked a few times a second.

    A connection stamps the time it started waiting for a request with `now` (no clock read
    per request); the stamp lags the true time by at most one interval, so a deadline is checked
    against stamp + limit + interval: never early, at most two intervals late."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.now = loop.time()
        self._loop = loop
        self._connections = connections
        loop.call_later(SWEEP_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self.now = now = self._loop.time()
        for connection in list(self._connections):
            if isinstance(connection, S3TierHttpProtocol):
                connection.check_deadline(now)
        self._loop.call_later(SWEEP_INTERVAL_S, self._tick)


_sweeps: dict[asyncio.AbstractEventLoop, Sweep] = {}


def _sweep_for(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> Sweep:
    sweep = _sweeps.get(loop)
    if sweep is None:
        _sweeps.clear()  # a loop of an earlier server in this process is gone
        sweep = _sweeps[loop] = Sweep(loop, connections)
    return sweep


class S3TierHttpProtocol(HttpToolsProtocol):
    """uvicorn's protocol with a fast path for plain hits, the coalescing writes above, and the
    sweep's deadlines in place of per-request timers. The ASGI scope is built only for requests
    the fast path declines."""

    _answered = False  # the current request was answered by the fast path
    _waiting_since: float | None = None  # waiting for a request's headers since (sweep time)
    _heard = False  # a byte arrived since then
    _served = False  # one answer went out: from then on the keep-alive limit applies too

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        super().connection_made(CoalescingTransport(transport, loop))  # type: ignore[arg-type]
        self._sweep = _sweep_for(loop, self.connections)
        self._waiting_since = self._sweep.now

    def data_received(self, data: bytes) -> None:
        self._heard = True
        super().data_received(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        if _fast_answer is not None and self._answer_fast(_fast_answer):
            return
        self._start_full_path()

    def _start_full_path(self) -> None:
        """uvicorn's on_headers_complete, with the scope built here and a cycle that carries
        out zero-copy sends."""
        parser = self.parser
        http_version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        self.scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": http_version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
            "method": method,
            "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": parsed_url.query or b"",
            # sendfile writes the socket itself, beneath TLS: offered on plain HTTP only
            "extensions": {ZERO_COPY: {}} if self.scheme == "http" else {},
        }
        if parser.should_upgrade() and self._should_upgrade():
            return
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = ZeroCopyCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: answered in order
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def _answer_fast(self, fast: FastAnswer) -> bool:
        """Answer from the fast path when no earlier request on this connection is still being
        answered (pipelined answers keep their order), the client is reading what it was sent
        (a client that is not gets the full path's backpressure) and the connection stays open."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return False
        if self.flow.write_paused:
            return False
        parser = self.parser
        if parser.should_upgrade() or not parser.should_keep_alive():
            return False
        if parser.get_http_version() != "1.1":
            return False
        default = self.server_state.default_headers
        date = default[0][1] if default and default[0][0] == b"date" else b""
        wire = fast(parser.get_method(), self.url, self.headers, date)
        if wire is None:
            return False
        self._answered = True
        self.transport.writelines(wire)
        self.on_response_complete()
        return True

    def on_body(self, body: bytes) -> None:
        if not self._answered:  # a fast-path request has no body; anything else is uvicorn's
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._answered:
            self._answered = False
            return
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, with the sweep's stamp where it arms a keep-alive timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._waiting_since = self._sweep.now
            self._heard = False
            self._served = True

    def shutdown(self) -> None:
        """uvicorn's, except that an idle TLS connection is dropped rather than closed: a TLS
        close waits for the client's close_notify (up to the loop's 30 s), which a pooled idle
        client never sends, and the server's exit waited for it. Nothing is cut: the last answer
        on the connection was complete."""
        idle = self.cycle is None or self.cycle.response_complete
        super().shutdown()
        if idle and self.scheme == "https":
            self.transport.abort()

    def check_deadline(self, now: float) -> None:
        """Close the connection if it waited too long for a request, or for its headers."""
        since = self._waiting_since
        if since is None:
            return
        limit = _header_timeout_s
        if self._served and not self._heard:
            limit = min(limit, self.timeout_keep_alive)
        if now - since >= limit + SWEEP_INTERVAL_S and not self.transport.is_closing():
            self.transport.close()
