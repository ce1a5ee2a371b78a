"""The RAM tier: a byte-bounded LRU on the event loop (no lock: only the loop touches it)."""

from __future__ import annotations

from collections.abc import Hashable

from cachetools import LRUCache


class RamTier:
    """Blocks in process memory, bounded by the sum of their lengths."""

    name = "ram"

    def __init__(self, max_bytes: int) -> None:
        self._lru: LRUCache[Hashable, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)

    def peek(self, key: Hashable) -> bytes | None:
        """Synchronous lookup for the hot path, where an await would be pure overhead."""
        return self._lru.get(key)

    async def get(self, key: Hashable) -> bytes | None:
        return self._lru.get(key)

    async def put(self, key: Hashable, value: bytes) -> bool:
        return self.store(key, value)

    def store(self, key: Hashable, value: bytes) -> bool:
        try:
            self._lru[key] = value
        except ValueError:
            # cachetools' way of saying the value is larger than the whole cache: not admitted.
            return False
        return True

    async def delete(self, key: Hashable) -> None:
        self._lru.pop(key, None)

    @property
    def used_bytes(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)
