"""The disk tier: diskcache in a folder, within one byte budget for the whole server, surviving
restarts.

Every diskcache call is synchronous SQLite and file I/O, so each runs on a small thread pool,
never on the event loop. Every block is a file with a random name that diskcache chooses: object
keys never become paths. Any error is a logged miss, never a failed request.

Two things decide what is on disk (docs/reliability.md, "One disk budget across workers"):

- *What is worth keeping*: a byte-aware W-TinyLFU policy in each worker, in memory, on the loop.
  Every block it evicts is deleted from the folder.
- *What the folder may hold*: one ledger for the whole server (tiering/diskledger.py), shared
  by the workers. A block's file is charged before it is written and the charge released only
  once the file is gone, so value files, the SQLite index and its journal together never exceed
  --disk-bytes. When the ledger has no room (blocks other workers hold, or blocks stored before a
  restart that no policy has met), the oldest stored blocks go first.

diskcache itself evicts nothing (eviction policy "none"): its culling runs after a file is
written and would delete behind the ledger. Nor does it write its index on a read.
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
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import diskcache
import xxhash

from tiering.diskledger import DiskLedger
from tiering.policy import Policy, TinyLFUPolicy

log = logging.getLogger("s3tier.disk")
_HASH = struct.Struct(">Q")
CLEAN_MARKER = "s3tier-clean-shutdown"
CORRUPT = b"\x00corrupt"  # a sentinel no real block is (blocks carry a trailer, this does not)
# diskcache keeps values under this size inside its index; records (object metadata) must stay
# there, since the ledger charges only files.
_RECORD_MAX_BYTES = 1 << 15
_WOULD_WAIT = object()  # what a look on the loop returns where it would have had to wait
# Room kept for what the ledger does not charge: the folders above the value files and SQLite's
# journal (one write transaction at a time, of at most _TAKE_BATCH deletions: 37 KiB measured),
# and the pages each write in flight may add to the index before the next write sees its new
# size (8 KiB measured; one page split in each of its four B-trees at worst).
_FOLDER_SLACK_BYTES = 48 << 10
_INDEX_GROWTH_PER_WRITE_BYTES = 16 << 10
_TAKE_BATCH = 8
_ROOM_ATTEMPTS = 8  # rounds of evicting the oldest blocks before a write gives up


_KNOWN_MAX = 1 << 17  # value files this process has hashed and now trusts (names kept)


class BlockFile:
    """A value file open as a bare descriptor (no Python file object: a hit opens one per
    block) and the length of the block in it, its trailer excluded. The caller sends from
    `fileno()` and closes it; closing twice is harmless."""

    __slots__ = ("_fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size

    def fileno(self) -> int:
        return self._fd

    def read(self) -> bytes:
        return os.pread(self._fd, self.size, 0)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _intact(stored: bytes) -> memoryview | None:
    """The block in a stored value, if its trailer's hash matches it."""
    if len(stored) < _HASH.size:
        return None
    view = memoryview(stored)
    (expected,) = _HASH.unpack(view[-_HASH.size :])
    if expected != xxhash.xxh3_64_intdigest(view[: -_HASH.size]):
        return None
    return view[: -_HASH.size]


def _close(found: object) -> None:
    if isinstance(found, BlockFile):
        found.close()


def _settle(done: Any, abandoned: Any) -> None:
    if not done.cancelled() and done.exception() is None:
        abandoned(done.result())


def _reopen(path: str, size: int) -> BlockFile | None:
    """A value file this process has checked, opened by its path; None if it is gone. Files
    are never rewritten (a new value gets a new random name), so an open that succeeds finds
    the bytes that were checked; a file evicted or replaced since is simply not there."""
    try:
        return BlockFile(os.open(path, os.O_RDONLY | os.O_CLOEXEC), size)
    except OSError:
        return None


class DiskTier:
    """Blocks (and object metadata) on local disk."""

    name = "disk"
    shared = True  # one folder and one ledger for every worker process

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        threads: int = 4,
        policy: Policy | None = None,
        ledger: DiskLedger | None = None,
    ) -> None:
        folder = cache_folder(directory)
        self._cache = _open(folder)
        self._folder = folder
        self._look: diskcache.Cache | None = None  # the event loop's own reader, never waiting
        self._index = os.path.join(folder, "cache.db")
        self._unit = _allocation_unit(folder)
        self._ledger = ledger if ledger is not None else DiskLedger()
        self._slack = _FOLDER_SLACK_BYTES + (
            _INDEX_GROWTH_PER_WRITE_BYTES * threads * self._ledger.workers
        )
        self.capacity_bytes = max_bytes
        # A policy given by the caller keeps its size as a ceiling (tests make it the thing
        # under test); within it, each worker's share follows the ledger (`_fit_policy`).
        self._policy = policy if policy is not None else TinyLFUPolicy(max_bytes)
        self._policy_ceiling = self._policy.capacity_bytes
        self._index_bytes = self._measure_index()
        self._ledger.initialise(self._charged_in_index)
        self.admissions = 0
        self.evictions = 0
        self.corrupt = 0
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3tier-disk")
        # Value files hashed by this process, by block: (path, block length), trusted since.
        self._known: dict[Hashable, tuple[str, int]] = {}
        self.errors = 0

    async def get(self, key: Hashable) -> bytes | None:
        data: bytes | None = await self._run(self._load, key)
        return data if await self._count_read(key, data) else None

    async def open_block(self, key: Hashable) -> BlockFile | bytes | None:
        """The block as an open file to send without copying it through Python (bytes if it
        is stored inline), or None. Checked like `get` the first time this process opens
        that file; afterwards the file is trusted and opened again by its path, on the loop:
        one open(2), no index lookup, no thread (see `_open_checked`)."""
        trusted = self.open_trusted(key)
        if trusted is not None:
            return trusted
        found: BlockFile | bytes | None = await self._run(self._open_checked, key, abandoned=_close)
        return found if await self._count_read(key, found) else None

    def open_trusted(self, key: Hashable) -> BlockFile | None:
        """`open_block` without awaiting, for a block whose file this process has checked
        and its policy holds; else None (then `open_block` finds out)."""
        known = self._known.get(key)
        if known is None or key not in self._policy:
            return None
        found = _reopen(*known)
        if found is None:  # replaced or evicted since: the index knows
            self._known.pop(key, None)
            return None
        self._policy.access(key, found.size, 0.0)
        return found

    async def _count_read(self, key: Hashable, found: BlockFile | bytes | None) -> bool:
        """The policy's side of a read; whether it was a hit."""
        if found is None:
            self._policy.remove(key)  # another worker may have evicted it: nothing to count
            self._policy.access(key, 0, 0.0)
            return False
        if found is CORRUPT:
            self.corrupt += 1
            self._policy.remove(key)
            log.warning("disk tier: dropped a corrupt block (checksum or length mismatch)")
            return False
        size = found.size if isinstance(found, BlockFile) else len(found)
        if key not in self._policy:
            # Stored before a restart or by another worker: learn it. The block itself, if the
            # policy turns it away, stays: it is charged, and another worker may hold it.
            evicted = self._fit_policy() + self._policy.admit(key, size, 0.0)
            await self._evict([gone for gone in evicted if gone != key])
        self._policy.access(key, size, 0.0)
        return True

    async def put(self, key: Hashable, value: bytes) -> bool:
        evicted = self._fit_policy() + self._policy.admit(key, len(value), 0.0)
        admitted = key not in evicted
        await self._evict([gone for gone in evicted if gone != key])
        if not admitted:
            return False
        self.admissions += 1
        stored = bool(await self._run(self._store, key, value))
        if not stored:
            self._policy.remove(key)  # not on disk: the policy must not count it
        return stored

    def _fit_policy(self) -> list[Hashable]:
        """Size this worker's policy to its share of the budget: at least an equal share,
        more while the ledger has room; the keys evicted to fit."""
        limit = self._values_limit(self._index_bytes)
        fair = limit // max(1, self._ledger.workers)
        room = max(fair, self._policy.used_bytes + limit - self._ledger.charged)
        return self._policy.resize(max(0, min(self._policy_ceiling, room)))

    async def _evict(self, keys: list[Hashable]) -> None:
        if keys:
            self.evictions += len(keys)
            await self._run(self._take, keys)

    def _store(self, key: Hashable, value: bytes) -> bool:
        if key in self._cache:
            return True  # another worker stored it meanwhile
        # Every block carries a hash of itself (XXH3), checked on each read: a flipped byte or
        # a truncated file is found before it is served, never after. Written from a reader so
        # that block and trailer are never joined into a copy of the block.
        trailer = _HASH.pack(xxhash.xxh3_64_intdigest(value))
        charge = self._charge(len(value) + len(trailer))
        if not self._make_room(charge):
            return False
        added = False
        try:
            added = bool(self._cache.add(key, _Chained(value, trailer), read=True))
        finally:
            if not added:  # already there (its file is removed), or the write failed
                self._ledger.release(charge)
        return True

    def _load(self, key: Hashable) -> bytes | None:
        handle = self._cache.get(key, read=True)
        if handle is None:
            return None
        with handle:
            stored = handle.read()
        block = _intact(stored)
        if block is None:
            self._take([key])
            return CORRUPT
        # The only copy made on a read: bytes without the trailer. (A file read into a
        # bytearray would save it, but diskcache and the tiers want bytes.)
        return block.tobytes()

    def _open_checked(self, key: Hashable) -> BlockFile | bytes | None:
        # Zero-copy sends cannot hash what they send, so each value file is hashed the first
        # time this process opens it and trusted from then on: a block is immutable (its key
        # names one version), and a file is never rewritten in place, only replaced by one
        # with a new name. A byte flipped on disk while the process runs is found after its
        # next restart, not at once: the price of not reading the block into Python. The
        # page cache keeps what this read brought in for the sends that follow.
        handle = self._cache.get(key, read=True)
        if handle is None:
            return None
        with handle:
            name = getattr(handle, "name", None)
            if not isinstance(name, str):  # stored inline, not as a file: nothing to send from
                return self._load(key)
            size = os.fstat(handle.fileno()).st_size - _HASH.size
            if self._known.get(key, ("",))[0] != name:
                if _intact(handle.read()) is None:
                    self._take([key])
                    return CORRUPT
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()  # only costs a second check of each file
                self._known[key] = (name, size)
            return BlockFile(os.dup(handle.fileno()), size)

    # -- the budget (on the thread pool) ----------------------------------------------------

    def _charge(self, size: int) -> int:
        """What a value file of `size` bytes costs the folder, as `du` counts it: its blocks,
        and at most two folders of its own (diskcache's two levels of subfolders)."""
        return -(-size // self._unit) * self._unit + 2 * self._unit

    def _values_limit(self, index_bytes: int) -> int:
        return self.capacity_bytes - index_bytes - self._slack

    def _measure_index(self) -> int:
        total = 0
        for path in (self._index, self._index + "-journal"):
            with contextlib.suppress(OSError):
                found = os.stat(path)
                total += max(found.st_size, found.st_blocks * 512)
        return total

    def _make_room(self, charge: int) -> bool:
        """Charge `charge` bytes to the ledger, evicting the oldest blocks if there is no room;
        False if there is none to be had (what is left is being written right now)."""
        for _ in range(_ROOM_ATTEMPTS):
            self._index_bytes = self._measure_index()
            limit = self._values_limit(self._index_bytes)
            if self._ledger.reserve(charge, limit):
                return True
            need = self._ledger.charged + charge - limit
            if need > 0 and not self._take_oldest(need):
                return False
        return False

    def _take(self, keys: list[Hashable]) -> None:
        """Delete these blocks' rows and files, and release what they were charged: only
        the process that actually deleted a row releases it, so the ledger never drifts."""
        for first in range(0, len(keys), _TAKE_BATCH):
            freed = 0
            with self._cache._transact(retry=True) as (sql, cleanup):
                for key in keys[first : first + _TAKE_BATCH]:
                    self._known.pop(key, None)
                    db_key, raw = self._cache._disk.put(key)
                    rows = sql(
                        "SELECT rowid, size, filename FROM Cache WHERE key = ? AND raw = ?",
                        (db_key, raw),
                    ).fetchall()
                    for rowid, size, filename in rows:
                        sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
                        cleanup(filename)
                        freed += self._charge(size) if filename is not None else 0
            # The files are gone once the transaction has committed (diskcache removes them
            # then): only now may another write have their bytes.
            self._ledger.release(freed)

    def _take_oldest(self, need: int) -> bool:
        """Evict the oldest stored blocks (row order is store order) until `need` bytes are
        freed, whoever holds them; False if there is no stored block to evict."""
        freed = taken = 0
        with self._cache._transact(retry=True) as (sql, cleanup):
            rows = sql(
                "SELECT rowid, size, filename FROM Cache WHERE filename IS NOT NULL"
                " ORDER BY rowid LIMIT ?",
                (_TAKE_BATCH,),
            ).fetchall()
            for rowid, size, filename in rows:
                if freed >= need:
                    break
                sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
                cleanup(filename)
                freed += self._charge(size)
                taken += 1
        self._ledger.release(freed)
        self.evictions += taken  # counted from a pool thread: a metric, not a decision
        return taken > 0

    def _charged_in_index(self) -> int:
        """What the files the index knows cost: the ledger's start after a restart."""
        sizes = self._cache._sql("SELECT size FROM Cache WHERE filename IS NOT NULL").fetchall()
        return sum(self._charge(size) for (size,) in sizes)

    # Small records (object metadata) are kept outside the block policy: they are tiny, and
    # losing one costs a round trip, not a transfer. They live inside the index, which the
    # budget counts by its size.
    def holds(self, key: Hashable) -> bool:
        """Whether the policy counts the block as resident (no I/O; may miss blocks stored
        before a restart, or by another worker, that this worker has not read since)."""
        return key in self._policy

    async def get_record(self, key: Hashable) -> bytes | None:
        value = self._at_once(lambda index: index.get(key))
        if value is _WOULD_WAIT:
            value = await self._run(self._cache.get, key)
        return value if isinstance(value, bytes) else None

    def _at_once(self, look: Callable[[diskcache.Cache], object]) -> object:
        """`look` at the index from the event loop's thread, or _WOULD_WAIT.

        A cold miss asks for its object's record before anything else, and a write asks
        whether there is a record to delete; a hop to the pool cost each 0.1-1.5 ms of waiting
        for a thread (measured for W6), where reading the index takes tens of microseconds.
        The loop's own connection never waits (busy timeout 0): while a writer holds the
        index, or on any error, the look goes to the pool instead, which waits, and counts
        errors, as every other disk operation does."""
        try:
            if self._look is None:
                self._look = diskcache.Cache(self._folder, timeout=0, **_SETTINGS)
            return look(self._look)
        except Exception:
            return _WOULD_WAIT

    async def put_record(self, key: Hashable, value: bytes) -> bool:
        if len(value) >= _RECORD_MAX_BYTES:
            return False  # it would become a file the ledger does not charge
        return bool(await self._run(self._put_record, key, value))

    def _put_record(self, key: Hashable, value: bytes) -> bool:
        return self._make_room(0) and bool(self._cache.set(key, value))

    async def delete_record(self, key: Hashable) -> None:
        if self._at_once(lambda index: key in index) is not False:
            await self._run(self._delete_record, key)

    def _delete_record(self, key: Hashable) -> None:
        # Looking costs a read; deleting takes the index's write lock and commits, even for a
        # key that is not there, which is what nearly every write through the proxy asks for.
        if key in self._cache:
            self._cache.delete(key)

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
        await self._run(self._take, [key])

    async def _run(self, fn: Any, *args: Any, abandoned: Any = None) -> Any:
        """`fn(*args)` on the pool. `abandoned(result)` lets go of what it returns if the
        caller is cancelled meanwhile (an open file): the thread runs on regardless."""
        work = None
        try:
            work = self._pool.submit(fn, *args)
            return await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            if abandoned is not None and work is not None:
                work.add_done_callback(lambda done: _settle(done, abandoned))
            raise
        except Exception as exc:  # a broken disk degrades to a miss; it never fails a request
            self.errors += 1
            log.warning("disk tier error: %s: %s", type(exc).__name__, exc)
            return None

    async def usage(self) -> tuple[int, int]:
        """(bytes on disk as the budget counts them, entries), for the whole server."""
        entries = await self._run(len, self._cache)
        return self._ledger.charged + self._index_bytes, entries or 0

    def faults(self) -> dict[str, int]:
        return {"io": self.errors, "corrupt": self.corrupt}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._look is not None:
            self._look.close()
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


LAYOUT_FILE = "s3tier-layout"


def adopt_layout(directory: str, block_size: int) -> bool:
    """Make the folder's blocks ones of `block_size`; returns whether cached blocks were dropped.

    Block keys name an index, not a byte offset, so a block cached under another block size
    would be served as the wrong bytes of the right length. A folder whose recorded block size
    differs (or that records none) is moved aside and removed in the background. Once per
    server, before any worker opens the folder."""
    layout = os.path.join(directory, LAYOUT_FILE)
    wanted = f"block_size={block_size}\n"
    try:
        with open(layout, encoding="utf-8") as handle:
            recorded = handle.read()
    except OSError:
        recorded = None
    folder = cache_folder(directory)
    dropped = False
    if recorded != wanted and os.path.exists(os.path.join(folder, "cache.db")) and _ours(folder):
        # Unique: an earlier folder set aside may still be being removed.
        aside = f"{folder}.other-layout-{time.time_ns()}"
        log.warning(
            "disk tier: blocks cached with another block size (%s); starting empty",
            (recorded or "unrecorded").strip(),
        )
        os.rename(folder, aside)
        threading.Thread(target=shutil.rmtree, args=(aside, True), daemon=True).start()
        dropped = True
    with contextlib.suppress(OSError):
        os.makedirs(directory, exist_ok=True)
        with open(layout, "w", encoding="utf-8") as handle:
            handle.write(wanted)
    return dropped


def mark_clean(directory: str) -> None:
    path = os.path.join(directory, CLEAN_MARKER)
    with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as marker:
        marker.write("s3tier stopped cleanly\n")


def reclaim_orphans(directory: str) -> None:
    """After an unclean stop, remove value files that no index row points to (a process killed
    between writing a file and committing its row). Slow on a large tier: run it aside. It
    opens the live folder with the same settings as the tier that serves from it."""
    try:
        with diskcache.Cache(cache_folder(directory), **_SETTINGS) as cache:
            problems = cache.check(fix=True)
        log.warning("disk tier: unclean shutdown; repaired %d problems", len(problems))
    except Exception as exc:  # repair is best effort; serving goes on either way
        log.warning("disk tier: repair after unclean shutdown failed: %s", exc)


def _open(directory: str) -> diskcache.Cache:
    """The cache in `directory`. A damaged index in a folder that holds nothing but what
    diskcache and s3tier put there is moved aside (and removed in the background), so the tier
    starts empty rather than the server crash-looping; anything else is left untouched and the
    error raised: the caller then serves without a disk tier."""
    try:
        return diskcache.Cache(directory, **_SETTINGS)
    except sqlite3.DatabaseError as exc:
        if not _ours(directory):
            raise
        aside = f"{directory}.damaged-{time.time_ns()}"
        log.warning("disk tier index damaged (%s): moved to %s, starting empty", exc, aside)
        os.rename(directory, aside)
        threading.Thread(target=shutil.rmtree, args=(aside, True), daemon=True).start()
        return diskcache.Cache(directory, **_SETTINGS)


def _allocation_unit(directory: str) -> int:
    """The file system's block: what every file's size is rounded up to on disk."""
    try:
        return max(512, os.statvfs(directory).f_bsize)
    except OSError:
        return 4096


# The one set of settings every opening of the folder uses (serving, and the repair that runs
# beside it: diskcache stores them in the index, so two sets would flip the folder's policy).
_SETTINGS: dict[str, object] = dict(
    # The policies and the ledger above decide what stays; diskcache's own culling would delete
    # behind the ledger, after the file it makes room for is written. "none" also means no index
    # write on a read, which "least-recently-used" makes for every block served (measured: the
    # disk path's largest cost with two workers sharing the index).
    eviction_policy="none",
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
