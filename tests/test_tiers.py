"""One contract for every tier: a dumb byte store whose policy decides what stays."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiering.blocks import BlockKey
from tiering.disk import BlockFile, DiskTier, mark_clean, reclaim_orphans, unclean_since_last_run
from tiering.diskledger import DiskLedger
from tiering.policy import LRUPolicy, TinyLFUPolicy
from tiering.ram import RamTier
from tiering.tier import Tier

CAPACITY = 64 * 1024


@pytest.fixture(params=["ram", "disk"])
def tier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tier]:
    """Each tier, seen only through the Tier protocol: this suite is its contract."""
    if request.param == "ram":
        yield RamTier(CAPACITY)
        return
    # The policy holds CAPACITY; diskcache's hard cap behind it, which also counts its SQLite
    # file, is left roomy so that it is the policy being tested.
    disk = DiskTier(str(tmp_path / "disk"), 64 * CAPACITY, policy=TinyLFUPolicy(CAPACITY))
    yield disk
    disk.close()


def key(i: int) -> BlockKey:
    return BlockKey("b", f"k{i}", '"e"', 0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_what_is_put_is_got_back(tier: Any) -> None:
    async def go() -> None:
        assert await tier.put(key(1), b"x" * 1000)
        assert await tier.get(key(1)) == b"x" * 1000

    run(go())


def test_a_missing_key_is_a_miss_not_an_error(tier: Any) -> None:
    assert run(tier.get(key(404))) is None


def test_deleted_keys_are_gone(tier: Any) -> None:
    async def go() -> None:
        await tier.put(key(1), b"y" * 100)
        await tier.delete(key(1))
        assert await tier.get(key(1)) is None
        await tier.delete(key(2))  # deleting what is not there is fine

    run(go())


def test_a_value_larger_than_the_tier_is_declined(tier: Any) -> None:
    assert run(tier.put(key(1), b"z" * (CAPACITY + 1))) is False
    assert run(tier.get(key(1))) is None


def test_bytes_held_never_exceed_the_capacity(tier: Any) -> None:
    async def go() -> None:
        for i in range(200):
            await tier.put(key(i), bytes([i % 256]) * 4096)
        held = [await tier.get(key(i)) for i in range(200)]
        assert sum(len(h) for h in held if h is not None) <= CAPACITY

    run(go())


def test_a_scan_of_one_hit_blocks_does_not_flush_a_hot_set(tier: Any) -> None:
    async def go() -> None:
        hot = range(8)  # 32 KiB, half the tier, read again and again
        for _ in range(5):
            for i in hot:
                if await tier.get(key(i)) is None:
                    await tier.put(key(i), b"h" * 4096)
        for i in range(1000, 1200):  # a scan of 800 KiB, each block read once
            if await tier.get(key(i)) is None:
                await tier.put(key(i), b"s" * 4096)
        survivors = [i for i in hot if await tier.get(key(i)) is not None]
        assert len(survivors) == len(hot)

    run(go())


def test_a_corrupt_block_on_disk_is_dropped_and_reads_as_a_miss(tmp_path: Path) -> None:
    disk = DiskTier(str(tmp_path / "disk"), 64 << 20, policy=TinyLFUPolicy(16 << 20))

    async def go() -> None:
        await disk.put(key(1), b"a" * 40_000)  # 32 KiB and more: stored as a file
        await disk.put(key(2), b"b" * 40_000)
        files = sorted(p for p in (tmp_path / "disk").rglob("*.val"))
        assert len(files) == 2
        flipped = bytearray(files[0].read_bytes())
        flipped[100] ^= 0xFF
        files[0].write_bytes(bytes(flipped))
        files[1].write_bytes(files[1].read_bytes()[:1000])  # truncated
        assert await disk.get(key(1)) is None
        assert await disk.get(key(2)) is None
        assert disk.corrupt == 2
        assert await disk.put(key(1), b"a" * 40_000)  # fetched again and stored whole
        assert await disk.get(key(1)) == b"a" * 40_000

    try:
        asyncio.run(go())
    finally:
        disk.close()


def test_a_block_opened_for_zero_copy_is_checked_on_first_open_and_then_trusted(
    tmp_path: Path,
) -> None:
    disk = DiskTier(str(tmp_path / "disk"), 64 << 20, policy=TinyLFUPolicy(16 << 20))

    async def go() -> None:
        await disk.put(key(1), b"a" * 40_000)
        await disk.put(key(2), b"b" * 40_000)
        files = {p.read_bytes()[:1]: p for p in (tmp_path / "disk").rglob("*.val")}
        damaged = bytearray(files[b"b"].read_bytes())
        damaged[7] ^= 0xFF
        files[b"b"].write_bytes(bytes(damaged))
        assert await disk.open_block(key(2)) is None  # found on its first open
        assert disk.corrupt == 1 and await disk.get(key(2)) is None
        opened = await disk.open_block(key(1))
        assert isinstance(opened, BlockFile) and opened.size == 40_000
        assert opened.read() == b"a" * 40_000
        opened.close()
        lookups: list[object] = []
        index_get = disk._cache.get
        disk._cache.get = lambda *a, **k: lookups.append(a) or index_get(*a, **k)  # type: ignore[method-assign]
        again = await disk.open_block(key(1))  # trusted now: opened by its path, not hashed
        assert isinstance(again, BlockFile) and again.size == 40_000
        assert again.read() == b"a" * 40_000 and lookups == []  # the index was not asked
        again.close()
        await disk.delete(key(1))
        assert await disk.open_block(key(1)) is None
        # Evicted by another worker: the path this one trusted is gone, and it says so.
        await disk.put(key(3), b"c" * 40_000)
        first = await disk.open_block(key(3))
        assert isinstance(first, BlockFile)
        first.close()
        other = DiskTier(str(tmp_path / "disk"), 64 << 20, policy=TinyLFUPolicy(16 << 20))
        try:
            await other.delete(key(3))
        finally:
            other.close()
        assert await disk.open_block(key(3)) is None

    try:
        asyncio.run(go())
    finally:
        disk.close()


def test_a_damaged_index_is_moved_aside_and_the_tier_starts_empty(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    (folder / "cache").mkdir(parents=True)
    (folder / "cache" / "cache.db").write_bytes(b"this is not a SQLite database" * 100)
    disk = DiskTier(str(folder), 64 << 20)
    try:
        assert asyncio.run(disk.get(key(1))) is None
        assert asyncio.run(disk.put(key(1), b"fresh")) is True
        assert asyncio.run(disk.get(key(1))) == b"fresh"
    finally:
        disk.close()


def test_orphaned_value_files_are_reclaimed_after_an_unclean_shutdown(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    assert not unclean_since_last_run(str(folder))  # nothing there yet: nothing to repair
    disk = DiskTier(str(folder), 64 << 20, policy=TinyLFUPolicy(16 << 20))
    asyncio.run(disk.put(key(1), b"k" * 40_000))
    disk.close()
    mark_clean(str(folder))
    assert not unclean_since_last_run(str(folder))  # stopped cleanly; the marker is now gone
    orphan = folder / "cache" / "ab" / "cd" / "orphan-from-a-killed-write.val"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 40_000)
    spooled = folder / "spool" / "upload-in-flight"  # beside the cache: never touched
    spooled.parent.mkdir()
    spooled.write_bytes(b"y")
    assert unclean_since_last_run(str(folder))  # no marker: as if the process had been killed
    reclaim_orphans(str(folder))
    assert not orphan.exists()
    assert spooled.exists()
    reopened = DiskTier(str(folder), 64 << 20, policy=TinyLFUPolicy(16 << 20))
    try:
        assert asyncio.run(reopened.get(key(1))) == b"k" * 40_000  # real blocks survive
    finally:
        reopened.close()


# -- the disk tier's index, policy and budget (issue 10, item 5) --------------------------------


def index_state(folder: Path) -> tuple[Any, ...]:
    """Everything a write to the SQLite index would change: its file, and each row's
    access columns (which diskcache's least-recently-used policy rewrites on every hit)."""
    index = folder / "cache" / "cache.db"
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT rowid, access_time, access_count FROM Cache").fetchall()
    found = index.stat()
    return found.st_mtime_ns, found.st_size, tuple(rows)


def eviction_setting(folder: Path) -> str:
    index = folder / "cache" / "cache.db"
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        (value,) = db.execute("SELECT value FROM Settings WHERE key = 'eviction_policy'").fetchone()
    return str(value)


def value_files(folder: Path) -> list[Path]:
    return sorted((folder / "cache").rglob("*.val"))


def test_a_disk_hit_writes_nothing_to_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    disk = DiskTier(str(folder), 64 << 20)
    try:
        assert run(disk.put(key(1), b"h" * 40_000))
        before = index_state(folder)
        time.sleep(0.01)  # a write now would show in the file's mtime
        for _ in range(5):
            assert run(disk.get(key(1))) == b"h" * 40_000
        assert index_state(folder) == before
    finally:
        disk.close()


def test_record_looks_skip_the_pool_and_never_block_the_loop_while_a_writer_holds_the_index(
    tmp_path: Path,
) -> None:
    """A cold miss looks for its metadata record from the event loop (no thread hop); while
    another process holds the index's write lock, the look waits on the pool instead, and the
    loop goes on serving meanwhile."""
    folder = tmp_path / "disk"
    disk = DiskTier(str(folder), 64 << 20)

    pooled: list[Any] = []
    on_pool = disk._run

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        pooled.append(fn)
        return await on_pool(fn, *args, **kwargs)

    async def go() -> None:
        assert await disk.put_record("record", b"meta")
        disk._run = counted  # type: ignore[method-assign]
        assert await disk.get_record("record") == b"meta"
        assert await disk.get_record("absent") is None
        assert pooled == []  # both looks made from the loop, no thread hop
        await disk.delete_record("absent")
        assert pooled == []  # nothing to delete: found out without the pool either
        assert await disk.put_record("doomed", b"x")
        pooled.clear()
        await disk.delete_record("doomed")
        assert len(pooled) == 1 and await disk.get_record("doomed") is None
        pooled.clear()
        writer = sqlite3.connect(str(folder / "cache" / "cache.db"), isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            look = asyncio.ensure_future(disk.get_record("record"))
            ticks = 0
            for _ in range(20):  # the loop keeps running while the look waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert not look.done() and ticks == 20
            writer.execute("COMMIT")
            assert await asyncio.wait_for(look, 10) == b"meta"
            assert len(pooled) == 1  # the look that would have waited went to the pool
        finally:
            writer.close()

    try:
        run(go())
    finally:
        disk.close()


def test_the_orphan_repair_opens_the_live_folder_with_the_serving_settings(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "disk"
    disk = DiskTier(str(folder), 64 << 20)
    try:
        assert run(disk.put(key(1), b"r" * 40_000))
        serving = eviction_setting(folder)
        reclaim_orphans(str(folder))  # runs beside the serving tier after an unclean stop
        assert eviction_setting(folder) == serving
        before = index_state(folder)
        time.sleep(0.01)
        assert run(disk.get(key(1))) == b"r" * 40_000
        assert index_state(folder) == before  # and hits still write nothing
    finally:
        disk.close()


def test_every_block_the_policy_evicts_is_deleted_from_disk(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    block = 40_000
    before_restart = DiskTier(str(folder), 64 << 20)
    run(before_restart.put(key(100), b"a" * block))
    before_restart.close()
    # After a restart the policy knows nothing; it holds three blocks.
    disk = DiskTier(str(folder), 64 << 20, policy=LRUPolicy(3 * block))
    try:
        for i in range(3):
            assert run(disk.put(key(i), bytes([i]) * block))
        assert len(value_files(folder)) == 4
        # Reading the block stored before the restart makes the policy learn it, which
        # evicts the least recently used of the three: that one must leave the disk too.
        assert run(disk.get(key(100))) == b"a" * block
        assert not disk.holds(key(0))
        assert run(disk.get(key(0))) is None
        assert len(value_files(folder)) == 3
    finally:
        disk.close()


def charged_for(files: list[Path], unit: int) -> int:
    """What the ledger must hold for these value files: blocks, and two folders each."""
    return sum(-(-p.stat().st_size // unit) * unit + 2 * unit for p in files)


def folder_bytes(folder: Path) -> int:
    """`du -s`: allocated blocks of every file and folder."""
    return sum(p.lstat().st_blocks * 512 for p in [folder, *folder.rglob("*")])


def test_two_workers_sharing_a_folder_keep_one_exact_budget_under_churn(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    budget = 2 << 20
    ledger = DiskLedger(workers=2)
    workers = [DiskTier(str(folder), budget, ledger=ledger) for _ in range(2)]
    unit = os.statvfs(folder).f_bsize
    rng = random.Random(3)
    sizes = {i: rng.randint(40_000, 300_000) for i in range(60)}

    def body(i: int) -> bytes:
        return bytes([i]) * sizes[i]

    async def step(tier: DiskTier) -> None:
        i = rng.randrange(60)
        roll = rng.random()
        if roll < 0.1:
            await tier.delete(key(i))
        elif (got := await tier.get(key(i))) is None:
            await tier.put(key(i), body(i))
        else:
            assert got == body(i)  # a block another worker evicted is a miss, never wrong

    async def go() -> None:
        for _ in range(150):
            await asyncio.gather(*(step(tier) for tier in workers for _ in range(3)))
            assert folder_bytes(folder) <= budget
            assert ledger.charged == charged_for(value_files(folder), unit)

    try:
        run(go())
        assert sum(tier.evictions for tier in workers) > 0, "the budget never had to evict"
    finally:
        for tier in workers:
            tier.close()


def test_one_busy_worker_may_fill_the_budget_and_an_idle_one_still_gets_room(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "disk"
    budget = 2 << 20
    ledger = DiskLedger(workers=2)
    busy, idle = (DiskTier(str(folder), budget, ledger=ledger) for _ in range(2))
    block = 100_000

    async def go() -> None:
        for i in range(40):
            await busy.put(key(i), bytes([i]) * block)
        # An equal share would be half; the free half is not wasted on the idle worker.
        assert ledger.charged > budget * 0.7
        for i in range(100, 105):
            assert await idle.put(key(i), b"n" * block)  # room is made: the oldest go first
            assert await idle.get(key(i)) == b"n" * block
        assert folder_bytes(folder) <= budget

    try:
        run(go())
    finally:
        busy.close()
        idle.close()


def test_the_ledger_is_one_count_for_every_process_that_attaches_it() -> None:
    name = f"s3tier-test-ledger-{os.getpid()}"
    owner = DiskLedger(2, name, create=True)
    worker = f"""
from tiering.diskledger import DiskLedger
ledger = DiskLedger(name={name!r})  # what a worker process does, by name
assert ledger.workers == 2
ledger.initialise(lambda: 300)
assert ledger.reserve(600, limit=1000)
assert not ledger.reserve(101, limit=1000)  # 300 + 600 + 101 > 1000: nothing charged
ledger.release(200)
ledger.close()
"""
    try:
        subprocess.run([sys.executable, "-c", worker], check=True, timeout=30)
        owner.initialise(lambda: 10_000)  # once per server: the worker did it already
        assert owner.charged == 700
        assert owner.reserve(300, limit=1000)
        assert not owner.reserve(1, limit=1000)
    finally:
        owner.close(unlink=True)
