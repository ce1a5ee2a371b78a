"""A block arriving from the upstream, readable while it arrives: cut-through for cold misses.

A cold GET's first block goes to its clients as its bytes come in, not once the whole block is
in hand, so a cold miss's first byte costs the upstream's first byte and not its last. Every
reader of the block follows the same arrival, each at its own pace: the buffer is the block's,
allocated once, readers take views of it, and the arrival never waits for them.

Two rules keep a cut-through answer honest:

- The block's last byte is released only once the whole block is in and has passed its checks
  (its length; its MD5 when it is the whole object). A failed arrival therefore leaves every
  reader short of its Content-Length, and the server closes the connection: never a
  complete-looking answer with wrong bytes.
- Nothing of it enters a tier before then: the orchestrator stores `done`'s result, which
  exists only for a block that arrived whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tiering.upstream import UpstreamBroken


class Arrival:
    """`length` bytes of an object from offset `at`, filling."""

    def __init__(self, at: int, length: int) -> None:
        self.at = at
        self.length = length
        self.filled = 0
        self._buffer = bytearray(length)
        self._view = memoryview(self._buffer)
        self._complete = False
        self._error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @property
    def end(self) -> int:
        """The object offset of the block's last byte."""
        return self.at + self.length - 1

    def write(self, piece: bytes) -> None:
        """The next bytes of the block, as they came."""
        end = self.filled + len(piece)
        if end > self.length:
            raise UpstreamBroken(f"answer longer than the {self.length} bytes asked for")
        self._view[self.filled : end] = piece
        self.filled = end
        self._wake()

    def finish(self) -> None:
        """The block is in and checked: release its last byte and hand it to whoever stores it."""
        if self.filled != self.length:
            raise UpstreamBroken(f"answer {self.length - self.filled} bytes short of the block")
        self._complete = True
        # Read-only from here on, like bytes (as tiering/upstream.py's buffers).
        self.done.set_result(self._buffer)  # type: ignore[arg-type]
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """The block will not arrive whole: readers stop short, nothing is stored."""
        if self._complete or self._error is not None:
            return
        self._error = exc
        self.done.set_exception(exc)
        self.done.exception()  # retrieved: nobody need be waiting for the whole block
        self._wake()

    def contents(self) -> bytes:
        """The buffer as it stands, for the checks `finish` waits on; read only."""
        return self._buffer  # type: ignore[return-value]

    def released(self) -> int:
        """How many bytes readers may have: all once complete, else all but the last."""
        return self.length if self._complete else min(self.filled, self.length - 1)

    async def wait(self, offset: int) -> None:
        """Until the byte at object offset `offset` is released; raises the arrival's failure."""
        while self.released() <= offset - self.at:
            if self._error is not None:
                raise type(self._error)(*self._error.args)
            # One future per waiter: a cancelled reader cancels only its own.
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def follow(self, start: int, end: int) -> AsyncIterator[memoryview]:
        """Bytes start..end (object offsets, clipped to this block) as they are released."""
        lo = max(start, self.at)
        hi = min(end, self.end) + 1
        while lo < hi:
            await self.wait(lo)
            upto = min(self.at + self.released(), hi)
            yield self._view[lo - self.at : upto - self.at]
            lo = upto

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
