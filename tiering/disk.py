"""The disk tier: diskcache in a folder, byte-bounded, surviving restarts.

Every diskcache call is synchronous SQLite and file I/O, so each runs on a small thread pool,
never on the event loop. Values of 32 KiB and more are files with random names that diskcache
chooses: object keys never become paths. Any error is a logged miss, never a failed request.

Admission and eviction follow a byte-aware policy (W-TinyLFU) over most of the capacity; the
policy lives in memory and runs on the loop. diskcache's own LRU culling at the full capacity
is the hard bound behind it, and what reclaims blocks the policy has not met since a restart:
rather than scanning the folder at start-up, the policy learns resident blocks as they are hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import struct
import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import diskcache
import xxhash

from tiering.policy import Policy, TinyLFUPolicy

log = logging.getLogger("s3tier.disk")
_HASH = struct.Struct(">Q")
CLEAN_MARKER = "s3tier-clean-shutdown"
CORRUPT = b"\x00corrupt"  # a sentinel no real block is (blocks carry a trailer, this does not)


class DiskTier:
    """Blocks (and object metadata) on local disk."""

    name = "disk"

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        threads: int = 4,
        policy: Policy | None = None,
        policy_share: float = 0.9,
    ) -> None:
        self._policy = (
            policy if policy is not None else TinyLFUPolicy(int(max_bytes * policy_share))
        )
        self.admissions = 0
        self.evictions = 0
        self.corrupt = 0
        self.capacity_bytes = max_bytes
        self._cache = _open(directory, max_bytes)
        self._marker = os.path.join(directory, CLEAN_MARKER)
        unclean = not os.path.exists(self._marker) and len(self._cache) > 0
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._marker)  # absent while running: a crash leaves it absent
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3tier-disk")
        if unclean:
            # A process killed mid-write can leave value files no index row points to; find and
            # remove them in the background rather than delaying start-up.
            self._pool.submit(self._reclaim_orphans)
        self.errors = 0

    async def get(self, key: Hashable) -> bytes | None:
        data: bytes | None = await self._run(self._load, key)
        if data is None:
            self._policy.access(key, 0, 0.0)
            return None
        if data is CORRUPT:
            self.corrupt += 1
            self._policy.remove(key)
            log.warning("disk tier: dropped a corrupt block (checksum or length mismatch)")
            return None
        if key not in self._policy:
            self._policy.admit(key, len(data), 0.0)  # resident from before a restart
        self._policy.access(key, len(data) if data is not None else 0, 0.0)
        return data

    async def put(self, key: Hashable, value: bytes) -> bool:
        evicted = self._policy.admit(key, len(value), 0.0)
        for gone in evicted:
            if gone != key:
                self.evictions += 1
                await self._run(self._cache.delete, gone)
        if key in evicted:
            return False
        self.admissions += 1
        return bool(await self._run(self._store, key, value))

    def _store(self, key: Hashable, value: bytes) -> bool:
        # Every block carries a hash of itself (XXH3), checked on each read: a flipped byte or
        # a truncated file is found before it is served, never after.
        return bool(self._cache.set(key, value + _HASH.pack(xxhash.xxh3_64_intdigest(value))))

    def _load(self, key: Hashable) -> bytes | None:
        stored = self._cache.get(key)
        if not isinstance(stored, bytes):
            return None
        data, trailer = stored[: -_HASH.size], stored[-_HASH.size :]
        if len(stored) < _HASH.size or _HASH.unpack(trailer)[0] != xxhash.xxh3_64_intdigest(data):
            self._cache.delete(key)
            return CORRUPT
        return data

    # Small records (object metadata) are kept outside the block policy: they are tiny, and
    # losing one costs a round trip, not a transfer.
    def holds(self, key: Hashable) -> bool:
        """Whether the policy counts the block as resident (no I/O; may miss blocks stored
        before a restart that nobody has read since)."""
        return key in self._policy

    async def get_record(self, key: Hashable) -> bytes | None:
        value = await self._run(self._cache.get, key)
        return value if isinstance(value, bytes) else None

    async def put_record(self, key: Hashable, value: bytes) -> bool:
        return bool(await self._run(self._cache.set, key, value))

    async def delete_record(self, key: Hashable) -> None:
        await self._run(self._cache.delete, key)

    async def record_keys(self, first: str) -> list[tuple[str, ...]]:
        """Keys of records whose key tuple starts with `first` (a full walk, off the loop:
        for rare admin actions such as purging a prefix)."""
        keys = await self._run(
            lambda: [k for k in self._cache.iterkeys() if isinstance(k, tuple) and k[0] == first]
        )
        return list(keys or [])

    async def writable(self) -> bool:
        """Whether a record can be written and read back (readiness)."""
        probe = ("probe", "readiness")
        if not await self.put_record(probe, b"ok"):
            return False
        return await self.get_record(probe) == b"ok"

    async def delete(self, key: Hashable) -> None:
        self._policy.remove(key)
        await self._run(self._cache.delete, key)

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except Exception as exc:  # a broken disk degrades to a miss; it never fails a request
            self.errors += 1
            log.warning("disk tier error: %s: %s", type(exc).__name__, exc)
            return None

    async def stats(self) -> tuple[int, int]:
        """(bytes on disk, entries), read from diskcache's own tallies off the loop."""
        result = await self._run(lambda: (self._cache.volume(), len(self._cache)))
        return result if result is not None else (0, 0)

    def _reclaim_orphans(self) -> None:
        try:
            problems = self._cache.check(fix=True)
            log.warning("disk tier: unclean shutdown; repaired %d problems", len(problems))
        except Exception as exc:  # repair is best effort; serving goes on either way
            log.warning("disk tier: repair after unclean shutdown failed: %s", exc)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._cache.close()
        with open(self._marker, "w", encoding="utf-8") as marker:
            marker.write("s3tier stopped cleanly\n")


def _open(directory: str, max_bytes: int) -> diskcache.Cache:
    """The cache in `directory`; a damaged index is moved aside and the tier starts empty,
    rather than the server crash-looping on it. The damaged folder is removed in the background."""
    settings = dict(
        size_limit=max_bytes, eviction_policy="least-recently-used", cull_limit=16, statistics=False
    )
    try:
        return diskcache.Cache(directory, **settings)
    except sqlite3.DatabaseError as exc:
        aside = f"{directory}.damaged-{int(time.time())}"
        log.warning("disk tier index damaged (%s): moved to %s, starting empty", exc, aside)
        os.rename(directory, aside)
        threading.Thread(target=shutil.rmtree, args=(aside, True), daemon=True).start()
        return diskcache.Cache(directory, **settings)
