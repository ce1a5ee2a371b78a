"""Bytes of a file sent to a client's socket by the kernel (`os.sendfile`), not through Python.

The ASGI "zero copy send" extension (`http.response.zerocopysend`) is what the server offers
the app for it; this module is how the protocol carries it out. uvloop's transports have no
sendfile of their own (asyncio's `loop.sendfile` falls back to reading and writing), so the
socket is written directly, once everything the transport holds has gone out: the order of
bytes on the wire never changes. Waiting for room uses a duplicate of the socket's descriptor,
because the loop refuses a writer on a descriptor that a transport owns; both name one socket.
The duplicate is made only when the socket is full, not for every file sent.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

DRAIN_POLL_S = 0.0005  # how often to look whether the transport has sent what it holds


class ShortFile(OSError):
    """The file ended before the count the response promised: the connection must close."""


async def send_file(
    transport: Any, loop: asyncio.AbstractEventLoop, fileno: int, offset: int, count: int
) -> None:
    """Send `count` bytes of the file from `offset`; raises ConnectionError when the client is
    gone, ShortFile when the file is shorter than promised."""
    transport.flush()
    while transport.get_write_buffer_size():
        if transport.is_closing():
            raise ConnectionResetError("the connection closed")
        await asyncio.sleep(DRAIN_POLL_S)
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        raise ConnectionResetError("the connection closed")
    out, waiter = sock.fileno(), -1
    try:
        while count > 0:
            try:
                sent = os.sendfile(out, fileno, offset, count)
            except BlockingIOError:
                if waiter < 0:
                    waiter = os.dup(out)
                await _writable(loop, waiter)
                continue
            if sent == 0:
                raise ShortFile(f"file ended {count} bytes short")
            offset += sent
            count -= sent
    finally:
        if waiter >= 0:
            os.close(waiter)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
