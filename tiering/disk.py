"""The disk tier: diskcache in a folder, byte-bounded, surviving restarts.

Every diskcache call is synchronous SQLite and file I/O, so each runs on a small thread pool,
never on the event loop. Values of 32 KiB and more are files with random names that diskcache
chooses: object keys never become paths. Any error is a logged miss, never a failed request.

Admission and eviction follow a byte-aware policy (W-TinyLFU) over 85% of the capacity; the
policy lives in memory and runs on the loop. diskcache's own culling at 95% (leaving room for
its index) is the hard bound behind it, and what reclaims blocks the policy has not met since
a restart: rather than scanning the folder at start-up, the policy learns resident blocks as
they are hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
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
HARD_BOUND_SHARE = 0.95
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
        policy_share: float = 0.85,
    ) -> None:
        self._policy = (
            policy if policy is not None else TinyLFUPolicy(int(max_bytes * policy_share))
        )
        self.admissions = 0
        self.evictions = 0
        self.corrupt = 0
        self.capacity_bytes = max_bytes
        # diskcache culls only while writing, and its index and journal count against the
        # folder too: its hard bound sits below --disk-bytes, the policy's below that.
        self._cache = _open(cache_folder(directory), int(max_bytes * HARD_BOUND_SHARE))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3tier-disk")
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
        # a truncated file is found before it is served, never after. Written from a reader so
        # that block and trailer are never joined into a copy of the block.
        trailer = _HASH.pack(xxhash.xxh3_64_intdigest(value))
        return bool(self._cache.set(key, _Chained(value, trailer), read=True))

    def _load(self, key: Hashable) -> bytes | None:
        handle = self._cache.get(key, read=True)
        if handle is None:
            return None
        with handle:
            stored = handle.read()
        if len(stored) < _HASH.size:
            self._cache.delete(key)
            return CORRUPT
        view = memoryview(stored)
        (expected,) = _HASH.unpack(view[-_HASH.size :])
        if expected != xxhash.xxh3_64_intdigest(view[: -_HASH.size]):
            self._cache.delete(key)
            return CORRUPT
        # The only copy made on a read: bytes without the trailer. (A file read into a
        # bytearray would save it, but diskcache and the tiers want bytes.)
        return view[: -_HASH.size].tobytes()

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

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._cache.close()


class _Chained:
    """A read-only file over two byte strings, without joining them."""

    def __init__(self, first: bytes, second: bytes) -> None:
        self._parts = [memoryview(first), memoryview(second)]

    def read(self, size: int = -1) -> bytes | memoryview:
        while self._parts and not self._parts[0]:
            self._parts.pop(0)
        if not self._parts:
            return b""
        part = self._parts[0]
        piece = part if size < 0 else part[:size]
        self._parts[0] = part[len(piece) :]
        return piece


def cache_folder(directory: str) -> str:
    """diskcache's own folder inside the disk tier's: its repair removes every file there that
    its index does not know, so nothing else (spool, metrics, markers) may live in it."""
    return os.path.join(directory, "cache")


def unclean_since_last_run(directory: str) -> bool:
    """Whether the last server on this folder stopped without `mark_clean`; the marker is
    removed now, so that a crash from here on leaves it absent. Once per server, not per worker."""
    marker = os.path.join(directory, CLEAN_MARKER)
    had_cache = os.path.exists(os.path.join(cache_folder(directory), "cache.db"))
    clean = os.path.exists(marker)
    with contextlib.suppress(OSError):  # absent, or the folder is not usable at all
        os.remove(marker)
    return had_cache and not clean


def mark_clean(directory: str) -> None:
    path = os.path.join(directory, CLEAN_MARKER)
    with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as marker:
        marker.write("s3tier stopped cleanly\n")


def reclaim_orphans(directory: str) -> None:
    """After an unclean stop, remove value files that no index row points to (a process killed
    between writing a file and committing its row). Slow on a large tier: run it aside."""
    try:
        with diskcache.Cache(cache_folder(directory), **_SETTINGS) as cache:
            problems = cache.check(fix=True)
        log.warning("disk tier: unclean shutdown; repaired %d problems", len(problems))
    except Exception as exc:  # repair is best effort; serving goes on either way
        log.warning("disk tier: repair after unclean shutdown failed: %s", exc)


def _open(directory: str, max_bytes: int) -> diskcache.Cache:
    """The cache in `directory`. A damaged index in a folder that holds nothing but what
    diskcache and s3tier put there is moved aside (and removed in the background), so the tier
    starts empty rather than the server crash-looping; anything else is left untouched and the
    error raised: the caller then serves without a disk tier."""
    settings = dict(
        size_limit=max_bytes,
        eviction_policy="least-recently-used",
        cull_limit=16,
        statistics=False,
        # No memory-mapped SQLite files (mmap I/O, WAL's -shm index): when the disk under them
        # fails, a mapped page raises SIGBUS and the whole process dies, where a read() or
        # write() returns an error the tier turns into a miss.
        sqlite_mmap_size=0,
        sqlite_journal_mode="truncate",
    )
    try:
        return diskcache.Cache(directory, **settings)
    except sqlite3.DatabaseError as exc:
        if not _ours(directory):
            raise
        aside = f"{directory}.damaged-{int(time.time())}"
        log.warning("disk tier index damaged (%s): moved to %s, starting empty", exc, aside)
        os.rename(directory, aside)
        threading.Thread(target=shutil.rmtree, args=(aside, True), daemon=True).start()
        return diskcache.Cache(directory, **settings)


_SETTINGS: dict[str, object] = dict(
    # The W-TinyLFU policy decides what stays; diskcache's culling is only the hard bound
    # behind it. "least-recently-stored" needs no index write on a read, which
    # "least-recently-used" makes for every block served (measured: the disk path's largest
    # cost with two workers sharing the index).
    eviction_policy="least-recently-stored",
    cull_limit=16,
    statistics=False,
    # No memory-mapped SQLite files (mmap I/O, WAL's -shm index): when the disk under them
    # fails, a mapped page raises SIGBUS and the whole process dies, where a read() or write()
    # returns an error the tier turns into a miss.
    sqlite_mmap_size=0,
    sqlite_journal_mode="truncate",
)
# What diskcache writes: its index, journal files, two-hex-digit value folders.
_OUR_NAMES = re.compile(r"cache\.db(-wal|-shm|-journal)?|[0-9a-f]{2}")


def _ours(directory: str) -> bool:
    """Whether a folder holds only a disk tier's files: the only kind s3tier may discard."""
    return os.path.isdir(directory) and all(
        _OUR_NAMES.fullmatch(name) for name in os.listdir(directory)
    )
