"""The protocol every cache tier implements: a dumb byte store.

No `contains`: checking and then getting is a race, so a lookup is a `get` that may miss.
A tier that fails must not fail the request: implementations return None (a miss) on error,
log it once, and count it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol


class Tier(Protocol):
    name: str

    async def get(self, key: Hashable) -> bytes | None:
        """The stored bytes, or None on a miss or any error."""

    async def put(self, key: Hashable, value: bytes) -> bool:
        """Store; False when the tier declined (too large, full, broken)."""

    async def delete(self, key: Hashable) -> None:
        """Forget the key; missing keys are fine."""
