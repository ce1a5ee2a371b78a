"""One contract for every tier: a dumb byte store whose policy decides what stays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiering.blocks import BlockKey
from tiering.disk import DiskTier, mark_clean, reclaim_orphans, unclean_since_last_run
from tiering.policy import TinyLFUPolicy
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
