"""uvicorn's httptools protocol, with a response's status line and headers sent together with
its first body bytes.

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
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport wrapper that joins a held write with the next one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        super().connection_made(CoalescingTransport(transport, loop))  # type: ignore[arg-type]
