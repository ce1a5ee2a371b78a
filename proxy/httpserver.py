"""uvicorn's httptools protocol, with two changes: a response's headers go out in one write with
its first body bytes, and a client gets a deadline for sending its request headers.

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

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, is_closing) after what is held.
        self.flush()
        return getattr(self._transport, name)


# How long a client may take to send a request's headers. uvicorn's own keep-alive timer is
# cancelled by any byte that arrives, so a client trickling one header byte a second would hold
# its connection for ever; this deadline is not moved by trickling. Set by `configure`.
_header_timeout_s = 10.0


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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        super().connection_made(CoalescingTransport(transport, loop))  # type: ignore[arg-type]
        self._arm_deadline()

    _answered = False  # the current request was answered by the fast path

    def on_headers_complete(self) -> None:
        self._disarm_deadline()
        if _fast_answer is not None and self._answer_fast(_fast_answer):
            return
        super().on_headers_complete()

    def _answer_fast(self, fast: FastAnswer) -> bool:
        """Answer from the fast path when no earlier request on this connection is still being
        answered (pipelined answers keep their order) and the connection stays open."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
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
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()  # the next request's headers get the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(_header_timeout_s, self._deadline_passed)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
