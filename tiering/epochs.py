"""Write epochs: a counter per key, bumped by every write, shared by all worker processes.

A write handled by one worker must be seen by reads in every worker, whatever the freshness
mode. Each write bumps its key's counter; metadata kept in RAM remembers the counter it was
read under and is ignored once the counter has moved. The same counter tells a fill that a
write came while it was under way, so it stores nothing.

The counters live in a `SharedBlock` (tiering/sharedblock.py: shared memory, never a file on
the cache disk). Keys share counters by hash; a write to one key then costs its neighbours a
revalidation, never a stale read. Racing increments from two processes
may count once, but the counter still moves, which is all a reader checks.
"""

from __future__ import annotations

import os
import secrets
import struct
import zlib

from tiering.blocks import ObjectId
from tiering.sharedblock import SharedBlock

SLOTS = 1 << 18  # 1 MiB of 32-bit counters
_COUNTER = struct.Struct("<I")


class WriteEpochs:
    """Counters in this process's memory, or in a named shared-memory block for workers."""

    def __init__(self, name: str | None = None, create: bool = False) -> None:
        self._block = SharedBlock(SLOTS * _COUNTER.size, name, create)
        self._buf = self._block.buf
        self.name = name
        # Names this server run in what is stored under its epochs (tiering/metastore.py):
        # counters start again at zero in the next run, so stamps of another run are not
        # compared with these. Workers share the block's name, so they share the run.
        self.run = name if name is not None else f"process-{os.getpid()}-{secrets.token_hex(4)}"

    def current(self, obj: ObjectId) -> int:
        return int(_COUNTER.unpack_from(self._buf, _slot(obj))[0])

    def bump(self, obj: ObjectId) -> None:
        offset = _slot(obj)
        value = _COUNTER.unpack_from(self._buf, offset)[0]
        _COUNTER.pack_into(self._buf, offset, (value + 1) & 0xFFFFFFFF)

    def close(self, unlink: bool = False) -> None:
        self._block.close(unlink)


def _slot(obj: ObjectId) -> int:
    # A stable hash: Python's hash() differs between processes.
    digest = zlib.crc32(obj.key.encode("utf-8", "surrogatepass"), zlib.crc32(obj.bucket.encode()))
    return (digest % SLOTS) * _COUNTER.size
