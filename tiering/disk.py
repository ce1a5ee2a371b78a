"""The disk tier: diskcache in a folder, byte-bounded, surviving restarts.

Every diskcache call is synchronous SQLite and file I/O, so each runs on a small thread pool,
never on the event loop. Values of 32 KiB and more are files with random names that diskcache
chooses: object keys never become paths. Any error is a logged miss, never a failed request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import diskcache

log = logging.getLogger("s3tier.disk")


class DiskTier:
    """Blocks (and object metadata) on local disk."""

    name = "disk"

    def __init__(self, directory: str, max_bytes: int, threads: int = 4) -> None:
        self._cache = diskcache.Cache(
            directory,
            size_limit=max_bytes,
            eviction_policy="least-recently-used",
            cull_limit=16,
            statistics=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3tier-disk")
        self.errors = 0

    async def get(self, key: Hashable) -> bytes | None:
        value = await self._run(self._cache.get, key)
        return value if isinstance(value, bytes) else None

    async def put(self, key: Hashable, value: bytes) -> bool:
        return bool(await self._run(self._cache.set, key, value))

    async def delete(self, key: Hashable) -> None:
        await self._run(self._cache.delete, key)

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except Exception as exc:  # a broken disk degrades to a miss; it never fails a request
            self.errors += 1
            log.warning("disk tier error: %s: %s", type(exc).__name__, exc)
            return None

    @property
    def used_bytes(self) -> int:
        return int(self._cache.volume())

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._cache.close()
