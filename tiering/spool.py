"""Where an uploaded body waits while the upstream decides: memory when small, else a file.

A PUT's bytes can only enter the cache once the upstream has accepted them and named their ETag,
so they are kept aside as they stream past. Large bodies go to a temporary file in the disk
tier's folder, written and read on a worker thread; memory holds at most one block.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from typing import BinaryIO

MEMORY_LIMIT_BYTES = 8 << 20


class Spool:
    """Bytes appended in order, read back in blocks; `close` removes any file."""

    def __init__(self, directory: str | None, block_size: int) -> None:
        self._directory = directory
        self._block_size = block_size
        self._memory: bytearray | None = bytearray()
        self._file: BinaryIO | None = None
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._memory is not None and self.size <= MEMORY_LIMIT_BYTES:
            self._memory += data
            return
        if self._file is None:
            self._file = await asyncio.to_thread(self._open)
            pending, self._memory = bytes(self._memory or b""), None
            await asyncio.to_thread(self._file.write, pending)
        await asyncio.to_thread(self._file.write, data)

    def _open(self) -> BinaryIO:
        if self._directory is not None:
            os.makedirs(self._directory, exist_ok=True)
        # Unnamed where the OS allows: nothing is left behind if the process dies.
        return tempfile.TemporaryFile(dir=self._directory, prefix="s3tier-spool-")

    async def blocks(self) -> AsyncIterator[bytes]:
        """The spooled bytes again, one block at a time."""
        if self._memory is not None:
            view = memoryview(self._memory)
            for start in range(0, len(view), self._block_size):
                yield bytes(view[start : start + self._block_size])
            return
        assert self._file is not None
        await asyncio.to_thread(self._file.seek, 0)
        while block := await asyncio.to_thread(self._file.read, self._block_size):
            yield block

    def close(self) -> None:
        self._memory = None
        if self._file is not None:
            self._file.close()
            self._file = None
