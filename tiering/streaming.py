"""A body in flight: the chunks of one byte range of one object version, a few blocks loading
ahead, as the orchestrator hands them to the wire.

The first piece is in hand before a `Body` exists, so a failure that can still be answered as
an error is. After it, a failure ends the chunks early and is logged here: the caller, which
sends `Content-Length` bytes, then never sends the last of them, and the server closes the
connection, so a client sees a short read and never a truncated body that looks whole.

Read-ahead learns from what was sent: a short answer (two blocks at most) as one read, even
when it crosses a block boundary, so a random 64 KiB range does not look like a reader walking
forward; a longer one block by block.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Protocol

from tiering.blockloads import Source
from tiering.blocks import ObjectId, block_span
from tiering.meta import ObjectMeta
from tiering.parts import Piece, Span, needed
from tiering.upstream import UpstreamBroken, UpstreamUnavailable
from tiering.upstreamreads import ObjectChanged

log = logging.getLogger("s3tier.objects")  # the name log readers know for aborted streams
SHORT_RESPONSE_BLOCKS = 2  # answers this short are noted once, as a single read
READ_AHEAD_BLOCKS = 2  # per stream; read-ahead beyond it is the prefetcher's, within budget
Chunk = bytes | memoryview
Chunks = AsyncGenerator[Chunk, None]
Stopped = Callable[[], bool]


class Blocks(Protocol):
    """What a body needs of the orchestrator (tiering/readthrough.py)."""

    block_size: int

    async def part(
        self, obj: ObjectId, meta: ObjectMeta, index: int, start: int, end: int
    ) -> tuple[Piece, Source]: ...

    def account(self, source: Source, sent_bytes: int) -> None: ...

    def note_read(
        self, obj: ObjectId, meta: ObjectMeta, start: int, end: int, response: Span
    ) -> None: ...


class Body:
    """Bytes `span` of an object, its first piece already fetched."""

    def __init__(
        self,
        blocks: Blocks,
        obj: ObjectId,
        meta: ObjectMeta,
        span: Span,
        first: tuple[Piece, Source],
        source: Source,
    ) -> None:
        self._blocks = blocks
        self._obj = obj
        self._meta = meta
        self.span = span
        self._first = first
        self.source = source  # the slowest of the metadata's source and the first piece's
        self._indices = block_span(span.start, span.end, blocks.block_size)

    async def chunks(
        self, stopped: Callable[[], bool] = lambda: False
    ) -> AsyncGenerator[Chunk, None]:
        """The bytes in order; fewer than `span` holds if a block failed, or once `stopped`
        (the client has gone), which is asked before each block after the first."""
        piece, source = self._first
        data = piece.slice(self.span.start, self.span.end)
        self._blocks.account(source, len(data))
        yield data
        short = len(self._indices) <= SHORT_RESPONSE_BLOCKS
        if not short:
            first_end = (self._indices[0] + 1) * self._blocks.block_size - 1
            self._note(Span(self.span.start, first_end))
        if len(self._indices) > 1:
            async for data in self._rest(stopped, note_blocks=not short):
                yield data
        if short:
            self._note(self.span)

    async def _rest(
        self, stopped: Callable[[], bool], note_blocks: bool
    ) -> AsyncGenerator[Chunk, None]:
        span, size = self.span, self._meta.size
        try:
            async with aclosing(self._read_ahead(self._indices[1:])) as loaded:
                async for index, piece, source in loaded:
                    if stopped():
                        return
                    data = piece.slice(span.start, span.end)
                    self._blocks.account(source, len(data))
                    yield data
                    if note_blocks:
                        self._note(
                            needed(index, self._blocks.block_size, size, span.start, span.end)
                        )
        except (ObjectChanged, UpstreamBroken, UpstreamUnavailable) as exc:
            log.warning("aborting stream of %s/%s: %s", self._obj.bucket, self._obj.key, exc)

    def _note(self, sent: Span) -> None:
        self._blocks.note_read(self._obj, self._meta, sent.start, sent.end, self.span)

    async def _read_ahead(self, indices: range) -> AsyncGenerator[tuple[int, Piece, Source], None]:
        """The blocks of `indices` in order, a few loading ahead; never one outside them, so a
        stream fetches nothing past its range even when its client stops early."""
        loop = asyncio.get_running_loop()
        window: deque[tuple[int, asyncio.Task[tuple[Piece, Source]]]] = deque()
        upcoming = iter(indices)

        def load(index: int) -> tuple[int, asyncio.Task[tuple[Piece, Source]]]:
            part = self._blocks.part(self._obj, self._meta, index, self.span.start, self.span.end)
            return index, loop.create_task(part)

        try:
            for index in upcoming:
                window.append(load(index))
                if len(window) >= READ_AHEAD_BLOCKS:
                    break
            while window:
                index, task = window.popleft()
                got, source = await task
                following = next(upcoming, None)
                if following is not None:
                    window.append(load(following))
                yield index, got, source
        finally:
            for _, task in window:
                task.cancel()
