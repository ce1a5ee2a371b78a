"""A block arriving from the upstream, readable while it arrives: cut-through for cold misses.

A cold GET's first block goes to its clients as its bytes come in, not once the whole block is
in hand, so a cold miss's first byte costs the upstream's first byte and not its last. Every
reader of the block follows the same arrival, each at its own pace, and the arrival never
waits for them. The pieces are kept as they came from the socket and readers take views of
them: nothing is allocated or copied before the first byte leaves. (A block-sized buffer made
up front costs its page faults there, about half a millisecond per MiB of fresh memory.) The
block is joined once, after its last byte is released, for the tiers.

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
import bisect
import hashlib
from collections.abc import AsyncIterator

from tiering.upstream import UpstreamBroken


class Arrival:
    """`length` bytes of an object from offset `at`, filling. With `md5`, the bytes must hash
    to it (a whole object under an MD5 ETag): hashed piece by piece as they come, so no pass
    over the block delays its last byte."""

    def __init__(self, at: int, length: int, md5: str | None = None) -> None:
        self.at = at
        self.length = length
        self.filled = 0
        self._pieces: list[bytes] = []
        self._starts: list[int] = []  # the block offset each piece starts at
        self._whole: bytes | None = None  # the pieces joined, once done
        self._complete = False
        self._error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._md5 = md5
        self._hash = hashlib.md5(usedforsecurity=False) if md5 is not None else None
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @property
    def end(self) -> int:
        """The object offset of the block's last byte."""
        return self.at + self.length - 1

    def write(self, piece: bytes) -> None:
        """The next bytes of the block, as they came (immutable: kept, not copied)."""
        end = self.filled + len(piece)
        if end > self.length:
            raise UpstreamBroken(f"answer longer than the {self.length} bytes asked for")
        if not piece:
            return
        self._starts.append(self.filled)
        self._pieces.append(piece)
        self.filled = end
        if self._hash is not None:
            self._hash.update(piece)
        self._wake()

    def finish(self) -> None:
        """The block is in: check it, release its last byte, then hand it to the tiers."""
        if self.filled != self.length:
            raise UpstreamBroken(f"answer {self.length - self.filled} bytes short of the block")
        if self._hash is not None and self._hash.hexdigest() != self._md5:
            raise UpstreamBroken("the object's bytes do not match its ETag")
        self._complete = True
        self._wake()
        # Joined after the readers have had their last byte: the copy is not theirs to wait on.
        asyncio.get_running_loop().call_soon(self._join)

    def fail(self, exc: BaseException) -> None:
        """The block will not arrive whole: readers stop short, nothing is stored."""
        if self._complete or self._error is not None:
            return
        self._error = exc
        self.done.set_exception(exc)
        self.done.exception()  # retrieved: nobody need be waiting for the whole block
        self._wake()

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
        lo = max(start, self.at) - self.at  # block offsets from here on
        hi = min(end, self.end) + 1 - self.at
        while lo < hi:
            await self.wait(self.at + lo)
            upto = min(self.released(), hi)
            while lo < upto:
                view = self._view(lo, upto)
                yield view
                lo += len(view)

    def _view(self, lo: int, upto: int) -> memoryview:
        """Bytes lo..upto-1 of the block, or as many as one piece holds of them."""
        if self._whole is not None:
            return memoryview(self._whole)[lo:upto]
        i = bisect.bisect_right(self._starts, lo) - 1
        piece, at = self._pieces[i], self._starts[i]
        return memoryview(piece)[lo - at : min(at + len(piece), upto) - at]

    def whole(self) -> bytes | None:
        """The block once it is all in and checked, else None: a reader that comes after its
        last byte has it from memory, before the tiers have taken it."""
        if not self._complete:
            return None
        self._join()
        return self._whole

    def _join(self) -> None:
        if self._whole is not None:
            return
        pieces, self._pieces, self._starts = self._pieces, [], []
        self._whole = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.done.set_result(self._whole)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
