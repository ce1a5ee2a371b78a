"""The protocols the cache tiers implement: dumb byte stores the orchestrator reads through.

No `contains`: checking and then getting is a race, so a lookup is a `get` that may miss.
`holds` is the weak answer beside it, named as such: a hint for skipping work (a prefetch,
a demotion), never a promise that a `get` will find the key.
A tier that fails must not fail the request: implementations return None (a miss) on error,
log it once, and count it (`faults`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol


class Tier(Protocol):
    """A byte store, bounded by `capacity_bytes`, that decides for itself what it keeps."""

    name: str
    shared: bool  # one store for every worker process: each reports its share of the usage
    capacity_bytes: int
    admissions: int
    evictions: int

    async def get(self, key: Hashable) -> bytes | None:
        """The stored bytes, or None on a miss or any error."""

    async def put(self, key: Hashable, value: bytes) -> bool:
        """Store; False when the tier declined (too large, full, broken)."""

    async def delete(self, key: Hashable) -> None:
        """Forget the key; missing keys are fine."""

    def holds(self, key: Hashable) -> bool:
        """Whether the key is probably stored, without I/O and without counting as a request."""

    async def usage(self) -> tuple[int, int]:
        """(bytes held as the tier's budget counts them, entries)."""

    def faults(self) -> dict[str, int]:
        """Errors counted since start, by kind (each was answered as a miss)."""


class LoopTier(Tier, Protocol):
    """A tier on the event loop (RAM), which answers without awaiting: the hit path's."""

    def peek(self, key: Hashable) -> bytes | None:
        """`get` without awaiting."""

    def store(self, key: Hashable, value: bytes) -> list[tuple[Hashable, bytes]]:
        """`put` that returns what left the tier to make room, and the value itself if it was
        not admitted, so that the caller can demote it to the tier below."""


class StoredFile(Protocol):
    """A block as an open file of a tier, `size` bytes from its start: to send without copying
    it through Python. Whoever receives one closes it."""

    size: int

    def fileno(self) -> int:
        """The descriptor the kernel sends from."""

    def close(self) -> None: ...


class FileTier(Tier, Protocol):
    """A tier whose blocks live in files (disk), which can hand one over open."""

    async def open_block(self, key: Hashable) -> StoredFile | bytes | None:
        """The block as an open file (bytes if not stored as a file of its own), or None on a
        miss or any error; integrity-checked as `get` checks it (each tier says how)."""

    def open_trusted(self, key: Hashable) -> StoredFile | None:
        """`open_block` without awaiting, where the tier can answer so (None: it cannot)."""
