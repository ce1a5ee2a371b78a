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
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
FastAnswer = Callable[[bytes, bytes, list[tuple[bytes, bytes]], bytes], "list[bytes] | None"]
_fast_answer: FastAnswer | None = None


def configure(header_timeout_s: float) -> None:
    """Set from the settings in each server process, before it accepts connections."""
    global _header_timeout_s
    _header_timeout_s = header_timeout_s


def install_fast_path(answer: FastAnswer | None) -> None:
    global _fast_answer
    _fast_answer = answer


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
        self.scope = {  # as uvicorn's on_message_begin builds it
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        super().on_headers_complete()

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
