"""The upload spool gives back exactly what it was given, in blocks, from memory or from a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tiering import spool as spool_module
from tiering.spool import Spool


async def roundtrip(pieces: list[bytes], directory: Path, block: int) -> list[bytes]:
    spool = Spool(str(directory), block)
    for piece in pieces:
        await spool.write(piece)
    try:
        return [b async for b in spool.blocks()]
    finally:
        spool.close()


@pytest.mark.parametrize("memory_limit", [1 << 30, 10])
def test_blocks_reassemble_the_body_whether_in_memory_or_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_limit: int
) -> None:
    monkeypatch.setattr(spool_module, "MEMORY_LIMIT_BYTES", memory_limit)
    pieces = [os.urandom(n) for n in (3, 0, 17, 100, 1)]
    blocks = asyncio.run(roundtrip(pieces, tmp_path, block=16))
    assert b"".join(blocks) == b"".join(pieces)
    assert [len(b) for b in blocks] == [16] * 7 + [9]
    assert list(tmp_path.iterdir()) == []  # the spool file is gone after close


def test_an_empty_body_has_no_blocks(tmp_path: Path) -> None:
    assert asyncio.run(roundtrip([], tmp_path, block=16)) == []
