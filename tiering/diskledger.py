"""The disk budget's ledger: one count, for the whole server, of the bytes charged for the disk
tier's value files, whichever worker wrote them (docs/reliability.md, "One disk budget across
workers").

A worker charges a file before it creates it and releases the charge only once the file is
gone, so the count is never below what the folder holds in value files, even while writes and
deletes are under way in several processes. Charges are taken under the block's lock against
a limit the caller computes (the budget less the index), so two workers can never both take
the last free bytes. One `SharedBlock` holds it: this process's memory with one worker, shared
memory with several.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tiering.sharedblock import SharedBlock

# charged bytes, worker processes sharing the budget, whether the count was read from the index
_LAYOUT = struct.Struct("<qqq")


class DiskLedger:
    """Bytes charged for value files, shared by `workers` processes."""

    def __init__(self, workers: int = 1, name: str | None = None, create: bool = False) -> None:
        self._block = SharedBlock(_LAYOUT.size, name, create)
        self.name = name
        if name is None or create:
            _LAYOUT.pack_into(self._block.buf, 0, 0, workers, 0)

    @property
    def charged(self) -> int:
        """The count now, read without the lock: a hint for sizing, never for a decision."""
        return int(_LAYOUT.unpack_from(self._block.buf)[0])

    @property
    def workers(self) -> int:
        return int(_LAYOUT.unpack_from(self._block.buf)[1])

    def initialise(self, count: Callable[[], int]) -> None:
        """Start from what the folder already holds (`count`, read from the index), once per
        server: the first worker to open the tier does it, the others find it done."""
        with self._block.lock():
            charged, workers, done = _LAYOUT.unpack_from(self._block.buf)
            if not done:
                _LAYOUT.pack_into(self._block.buf, 0, charged + count(), workers, 1)

    def reserve(self, amount: int, limit: int) -> bool:
        """Charge `amount` if the count stays within `limit`; False (nothing charged) if not."""
        with self._block.lock():
            charged, workers, done = _LAYOUT.unpack_from(self._block.buf)
            if charged + amount > limit:
                return False
            _LAYOUT.pack_into(self._block.buf, 0, charged + amount, workers, done)
            return True

    def release(self, amount: int) -> None:
        with self._block.lock():
            charged, workers, done = _LAYOUT.unpack_from(self._block.buf)
            _LAYOUT.pack_into(self._block.buf, 0, charged - amount, workers, done)

    def close(self, unlink: bool = False) -> None:
        self._block.close(unlink)
