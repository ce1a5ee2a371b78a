"""A body in flight: the chunks of one byte range of one object version, a few blocks loading
ahead, as the orchestrator hands them to the wire.

The first piece is in hand before a `Body` exists, so a failure that can still be answered as
an error is. After it, a failure ends the chunks early and is logged here: the caller, which
sends `Content-Length` bytes, then never sends the last of them, and the server closes the
connection, so a client sees a short read and never a truncated body that looks whole.

Read-ahead learns from what was sent: a short answer (two blocks at most) as one read, even
when it crosses a block boundary, so a random 64 KiB range does not look like a reader walking
forward; a longer one block by block.

The first piece may be a block still arriving from the upstream (tiering/arrival.py): its
bytes are sent as they come, and it is the arrival that holds back the block's last byte until
the block is whole and checked.

A body may be asked for file spans (`files`): then a block that only the disk tier holds, of an
object too large for RAM, comes as a `FileSpan` of its open file for the wire to send with
`sendfile`, not as bytes read into Python. The body owns those files: each is closed once the
caller has sent it and asks for the next chunk, or when the chunks are closed early.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Protocol

from tiering.arrival import Arrival
from tiering.blockloads import Source
from tiering.blocks import ObjectId, block_span
from tiering.meta import ObjectMeta
from tiering.parts import Piece, Span, needed
from tiering.tier import StoredFile
from tiering.upstream import UpstreamBroken, UpstreamUnavailable
from tiering.upstreamreads import ObjectChanged

log = logging.getLogger("s3tier.objects")  # the name log readers know for aborted streams
SHORT_RESPONSE_BLOCKS = 2  # answers this short are noted once, as a single read
READ_AHEAD_BLOCKS = 2  # per stream; read-ahead beyond it is the prefetcher's, within budget
Stopped = Callable[[], bool]


class FileSpan:
    """`count` bytes of an open file from `offset`: a chunk for the wire to send as it is."""

    __slots__ = ("count", "file", "offset")

    def __init__(self, file: StoredFile, offset: int, count: int) -> None:
        self.file = file
        self.offset = offset
        self.count = count

    def __len__(self) -> int:
        return self.count


class FilePiece:
    """A whole block from offset `at` of an object, as an open file of the disk tier."""

    __slots__ = ("at", "block")

    def __init__(self, at: int, block: StoredFile) -> None:
        self.at = at
        self.block = block

    def covers(self, span: Span) -> bool:
        return self.at <= span.start and span.end < self.at + self.block.size

    def slice(self, start: int, end: int) -> FileSpan:
        lo = max(start - self.at, 0)
        hi = min(end - self.at + 1, self.block.size)
        return FileSpan(self.block, lo, hi - lo)

    def close(self) -> None:
        self.block.close()


Chunk = bytes | memoryview | FileSpan
Chunks = AsyncGenerator[Chunk, None]
AnyPiece = Piece | FilePiece
FirstPiece = AnyPiece | Arrival  # a body's first piece may still be arriving


def close_piece(piece: AnyPiece) -> None:
    if isinstance(piece, FilePiece):
        piece.close()


class Blocks(Protocol):
    """What a body needs of the orchestrator (tiering/readthrough.py)."""

    block_size: int

    async def part(
        self, obj: ObjectId, meta: ObjectMeta, index: int, start: int, end: int, files: bool
    ) -> tuple[AnyPiece, Source]: ...

    def file_now(self, obj: ObjectId, meta: ObjectMeta, index: int) -> AnyPiece | None: ...

    def account(
        self, source: Source, sent_bytes: int, as_file: bool = False, to_peer: bool = False
    ) -> None: ...

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
        first: tuple[FirstPiece, Source],
        source: Source,
        files: bool = False,
        to_peer: bool = False,
    ) -> None:
        self._blocks = blocks
        self._to_peer = to_peer  # bytes for another member, not for a client of this one
        self._obj = obj
        self._meta = meta
        self.span = span
        self._first = first
        self.source = source  # the slowest of the metadata's source and the first piece's
        self._files = files
        self._indices = block_span(span.start, span.end, blocks.block_size)

    def close(self) -> None:
        """Let go of the first piece's file if the chunks were never read (closing twice is
        harmless)."""
        if not isinstance(self._first[0], Arrival):
            close_piece(self._first[0])

    async def chunks(
        self, stopped: Callable[[], bool] = lambda: False
    ) -> AsyncGenerator[Chunk, None]:
        """The bytes in order; fewer than `span` holds if a block failed, or once `stopped`
        (the client has gone), which is asked before each block after the first."""
        piece, source = self._first
        if isinstance(piece, Arrival):
            try:
                async for view in piece.follow(self.span.start, self.span.end):
                    self._blocks.account(source, len(view), to_peer=self._to_peer)
                    yield view
                    if stopped():
                        return
            except (ObjectChanged, UpstreamBroken, UpstreamUnavailable) as exc:
                self._aborted(exc)
                return
        else:
            data = piece.slice(self.span.start, self.span.end)
            self._blocks.account(source, len(data), isinstance(data, FileSpan), self._to_peer)
            try:
                yield data
            finally:
                close_piece(piece)
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
                    try:
                        if stopped():
                            return
                        data = piece.slice(span.start, span.end)
                        self._blocks.account(
                            source, len(data), isinstance(data, FileSpan), self._to_peer
                        )
                        yield data
                    finally:
                        close_piece(piece)
                    if note_blocks:
                        self._note(
                            needed(index, self._blocks.block_size, size, span.start, span.end)
                        )
        except (ObjectChanged, UpstreamBroken, UpstreamUnavailable) as exc:
            self._aborted(exc)

    def _aborted(self, exc: Exception) -> None:
        log.warning("aborting stream of %s/%s: %s", self._obj.bucket, self._obj.key, exc)

    def _note(self, sent: Span) -> None:
        self._blocks.note_read(self._obj, self._meta, sent.start, sent.end, self.span)

    async def _read_ahead(
        self, indices: range
    ) -> AsyncGenerator[tuple[int, AnyPiece, Source], None]:
        """The blocks of `indices` in order, a few loading ahead; never one outside them, so a
        stream fetches nothing past its range even when its client stops early."""
        loop = asyncio.get_running_loop()
        window: deque[tuple[int, asyncio.Future[tuple[AnyPiece, Source]]]] = deque()
        upcoming = iter(indices)
        span, files = self.span, self._files

        def load(index: int) -> tuple[int, asyncio.Future[tuple[AnyPiece, Source]]]:
            # A checked disk file opens at once: no task for it (a disk hit's every block).
            opened = self._blocks.file_now(self._obj, self._meta, index) if files else None
            if opened is not None:
                done = loop.create_future()
                done.set_result((opened, Source.DISK))
                return index, done
            part = self._blocks.part(self._obj, self._meta, index, span.start, span.end, files)
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
                task.add_done_callback(_close_unsent)


def _close_unsent(task: asyncio.Future[tuple[AnyPiece, Source]]) -> None:
    """A block loaded ahead for a stream that ended first: its file, if any, is closed."""
    if not task.cancelled() and task.exception() is None:
        close_piece(task.result()[0])
