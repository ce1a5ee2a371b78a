"""One contract for every tier: a dumb byte store whose policy decides what stays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiering.blocks import BlockKey
from tiering.disk import DiskTier
from tiering.policy import TinyLFUPolicy
from tiering.ram import RamTier

CAPACITY = 64 * 1024


@pytest.fixture(params=["ram", "disk"])
def tier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
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
