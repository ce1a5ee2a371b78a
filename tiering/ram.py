"""The RAM tier: blocks in process memory, admitted and evicted by a byte-aware policy.

Only the event loop touches it, so it needs no lock. The policy (W-TinyLFU by default) decides;
this class stores. Requests that miss are told to the policy too, because admission compares
how often a newcomer was asked for with how often its would-be victims were.
"""

from __future__ import annotations

from collections.abc import Hashable

from tiering.policy import Policy, TinyLFUPolicy


class RamTier:
    """Blocks in process memory, bounded by the sum of their lengths."""

    name = "ram"
    shared = False  # each worker process has its own

    def __init__(self, max_bytes: int, policy: Policy | None = None) -> None:
        self._policy = policy if policy is not None else TinyLFUPolicy(max_bytes)
        self.capacity_bytes = max_bytes
        self._data: dict[Hashable, bytes] = {}
        self.admissions = 0
        self.evictions = 0

    def peek(self, key: Hashable) -> bytes | None:
        """A lookup that counts as a request; synchronous, for the hot path."""
        data = self._data.get(key)
        self._policy.access(key, len(data) if data is not None else 0, 0.0)
        return data

    def holds(self, key: Hashable) -> bool:
        """Whether the key is resident, without counting as a request (for prefetch checks)."""
        return key in self._data

    async def get(self, key: Hashable) -> bytes | None:
        return self.peek(key)

    async def put(self, key: Hashable, value: bytes) -> bool:
        return all(gone != key for gone, _ in self.store(key, value))

    def store(self, key: Hashable, value: bytes) -> list[tuple[Hashable, bytes]]:
        """Offer a block; returns what left RAM to make room (the caller may demote it).
        A block the policy did not admit is returned too."""
        if key in self._data:
            return []
        evicted = self._policy.admit(key, len(value), 0.0)
        out: list[tuple[Hashable, bytes]] = []
        if key in evicted:
            out.append((key, value))
        else:
            self._data[key] = value
            self.admissions += 1
        for gone in evicted:
            data = self._data.pop(gone, None)
            if data is not None:
                self.evictions += 1
                out.append((gone, data))
        return out

    async def delete(self, key: Hashable) -> None:
        self._policy.remove(key)
        self._data.pop(key, None)

    @property
    def used_bytes(self) -> int:
        return int(self._policy.used_bytes)

    async def usage(self) -> tuple[int, int]:
        return self.used_bytes, len(self._data)

    def faults(self) -> dict[str, int]:
        return {}  # memory does not fail a lookup

    def __len__(self) -> int:
        return len(self._data)
