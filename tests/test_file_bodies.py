"""A body of disk-file spans on the wire: as zero-copy messages where the server takes them, as
the same bytes read from the files where it does not, and every file closed either way, also
when the client goes away. A real disk tier's files; only the orchestrator is reduced to the
few calls a body makes of it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from proxy.asgi import ZERO_COPY
from proxy.objects import send_body
from tiering.blockloads import Source
from tiering.blocks import BlockKey, ObjectId
from tiering.disk import DiskTier
from tiering.meta import ObjectMeta
from tiering.parts import Span
from tiering.streaming import AnyPiece, Body, FilePiece

B = 1000
DATA = os.urandom(2 * B + 500)
META = ObjectMeta('"e"', len(DATA), None, [], None, 0.0)
OBJ = ObjectId("b", "k")


class DiskBlocks:
    """What a Body asks of the orchestrator, answered from a disk tier's files."""

    block_size = B

    def __init__(self, disk: DiskTier) -> None:
        self.disk = disk
        self.sent_as_files = 0

    async def part(
        self, obj: ObjectId, meta: ObjectMeta, index: int, start: int, end: int, files: bool
    ) -> tuple[AnyPiece, Source]:
        opened = await self.disk.open_block(BlockKey("b", "k", '"e"', index))
        assert opened is not None and not isinstance(opened, bytes)
        return FilePiece(index * B, opened), Source.DISK

    def file_now(self, obj: ObjectId, meta: ObjectMeta, index: int) -> AnyPiece | None:
        return None

    def account(
        self, source: Source, sent_bytes: int, as_file: bool = False, to_peer: bool = False
    ) -> None:
        self.sent_as_files += sent_bytes if as_file else 0

    def note_read(
        self, obj: ObjectId, meta: ObjectMeta, start: int, end: int, response: Span
    ) -> None:
        pass


def open_fds() -> int:
    """Block files this process holds open (the index's own connections aside)."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            held += os.readlink(f"/proc/self/fd/{fd}").endswith(".val")
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return held


def run(tmp_path: Path, span: Span, zero_copy: bool, leave_after: int | None = None) -> Any:
    disk = DiskTier(str(tmp_path / "disk"), 64 << 20)

    async def go() -> tuple[list[Any], int]:
        for index in range(3):
            block = DATA[index * B : (index + 1) * B]
            assert await disk.put(BlockKey("b", "k", '"e"', index), block)
        blocks = DiskBlocks(disk)
        before = open_fds()
        first = await blocks.part(OBJ, META, span.start // B, span.start, span.end, True)
        body = Body(blocks, OBJ, META, span, first, Source.DISK, files=True)
        messages: list[Any] = []
        gone = asyncio.Event()

        async def send(message: Any) -> None:
            if message["type"] == ZERO_COPY:  # what the server's protocol does with it
                data = os.pread(message["file"].fileno(), message["count"], message["offset"])
                message = {**message, "data": data}
            messages.append(message)
            if leave_after is not None and len(messages) >= leave_after:
                gone.set()

        async def receive() -> Any:
            await gone.wait()
            return {"type": "http.disconnect"}

        try:
            await send_body(body, receive, send, zero_copy)
        finally:
            body.close()
        await asyncio.sleep(0.01)  # blocks opened ahead for a stream that ended are closed
        return messages, open_fds() - before

    try:
        return asyncio.run(go())
    finally:
        disk.close()


def sent(messages: list[Any]) -> bytes:
    return b"".join(bytes(m.get("data", m.get("body", b""))) for m in messages)


def test_file_spans_go_out_as_zero_copy_messages_where_the_server_takes_them(
    tmp_path: Path,
) -> None:
    messages, leaked = run(tmp_path, Span(500, 2200), zero_copy=True)
    assert {m["type"] for m in messages} == {ZERO_COPY}
    assert [(m["offset"], m["count"], m["more_body"]) for m in messages] == [
        (500, 500, True), (0, 1000, True), (0, 201, False),
    ]  # fmt: skip
    assert sent(messages) == DATA[500:2201] and leaked == 0


def test_file_spans_go_out_as_bytes_read_from_the_files_elsewhere(tmp_path: Path) -> None:
    messages, leaked = run(tmp_path, Span(0, len(DATA) - 1), zero_copy=False)
    assert {m["type"] for m in messages} == {"http.response.body"}
    assert sent(messages) == DATA and leaked == 0
    assert [m["more_body"] for m in messages] == [True, True, False]


def test_a_client_that_leaves_mid_body_leaves_no_file_open(tmp_path: Path) -> None:
    messages, leaked = run(tmp_path, Span(0, len(DATA) - 1), zero_copy=True, leave_after=1)
    assert len(messages) < 3 and leaked == 0
