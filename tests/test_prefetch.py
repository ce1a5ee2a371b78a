"""Prefetch accounting: issued within budget, used when a client reads it, wasted when not."""

from __future__ import annotations

import asyncio
from typing import Any

from tiering.blocks import BlockKey, ObjectId
from tiering.meta import ObjectMeta
from tiering.parts import Span
from tiering.prefetch import Prefetcher
from tiering.readahead import Budget, ReadAhead, ReadAheadConfig

B = 100
META = ObjectMeta('"e"', 100 * B, None, (), (), 0.0)
OBJ = ObjectId("b", "k")


async def scenario(
    budget_bytes: int, reads: list[tuple[int, int]], served: list[int], key: str = "k"
) -> Any:
    loaded: list[int] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def load(obj: ObjectId, meta: ObjectMeta, index: int) -> None:
        loaded.append(index)

    def spawn(coro: Any) -> None:
        tasks.add(asyncio.get_running_loop().create_task(coro))

    prefetcher = Prefetcher(
        ReadAhead(ReadAheadConfig(min_window=2, max_window=4)),
        Budget(budget_bytes),
        B,
        (".parquet",),
        cached=lambda key, meta: False,
        load=load,
        spawn=spawn,
    )
    obj = ObjectId("b", key)
    if key.endswith(".parquet"):
        prefetcher.on_cold(obj, META)
    for start, end in reads:
        prefetcher.on_read(obj, META, Span(start, end))
    await asyncio.gather(*tasks)
    for index in served:
        prefetcher.served(BlockKey("b", "k", '"e"', index))
    return prefetcher.stats, sorted(loaded)


def test_sequential_reads_issue_prefetch_and_reads_of_it_count_as_used() -> None:
    stats, loaded = asyncio.run(scenario(10 * B, [(0, 99), (100, 199), (200, 299)], [2, 3]))
    assert loaded == [2, 3, 4, 5, 6]
    assert (stats.issued_bytes, stats.used_bytes) == (5 * B, 2 * B)


def test_a_spent_budget_skips_prefetch_instead_of_queueing_it() -> None:
    stats, loaded = asyncio.run(scenario(1 * B, [(0, 99), (100, 199)], []))
    assert loaded == [2]
    assert stats.skipped == 1


def test_prefetched_blocks_pushed_out_unread_count_as_wasted() -> None:
    async def go() -> Any:
        prefetcher = Prefetcher(
            ReadAhead(), Budget(1 << 40), B, (), cached=lambda key, meta: False,
            load=lambda *a: asyncio.sleep(0), spawn=lambda coro: coro.close(), track_blocks=2,
        )  # fmt: skip
        for i in range(5):
            prefetcher._issue(OBJ, META, i)
        return prefetcher.stats

    stats = asyncio.run(go())
    assert (stats.issued_bytes, stats.wasted_bytes) == (5 * B, 3 * B)


def test_the_first_touch_of_a_parquet_file_prefetches_only_its_footer_block() -> None:
    _, loaded = asyncio.run(scenario(10 * B, [], [], key="t/x.parquet"))
    assert loaded == [99]


def test_a_ranged_read_prefetches_nothing_past_its_own_end() -> None:
    async def go() -> list[int]:
        loaded: list[int] = []
        tasks: list[asyncio.Task[Any]] = []

        async def load(obj: ObjectId, meta: ObjectMeta, index: int) -> None:
            loaded.append(index)

        prefetcher = Prefetcher(
            ReadAhead(), Budget(1 << 40), B, (), cached=lambda key, meta: False, load=load,
            spawn=lambda coro: tasks.append(asyncio.get_running_loop().create_task(coro)),
        )  # fmt: skip
        response = Span(150, 420)  # a column chunk: blocks 1..4, whole only 2 and 3
        for start, end in [(150, 199), (200, 299), (300, 399), (400, 420)]:
            prefetcher.on_read(OBJ, META, Span(start, end), response)
        await asyncio.gather(*tasks)
        return sorted(loaded)

    assert asyncio.run(go()) == [3]


def test_a_reader_walking_a_cached_object_asks_about_each_block_once_not_per_window() -> None:
    asked: list[int] = []
    uncached = {40}  # one block no tier holds: prefetched once, and the window goes on past it

    def cached(key: BlockKey, meta: ObjectMeta) -> bool:
        asked.append(key.block)
        return key.block not in uncached

    loaded: list[int] = []

    async def go() -> None:
        async def load(obj: ObjectId, meta: ObjectMeta, index: int) -> None:
            loaded.append(index)

        prefetcher = Prefetcher(
            ReadAhead(ReadAheadConfig(min_window=2, max_window=16)), Budget(1 << 40), B, (),
            cached=cached, load=load, spawn=asyncio.get_running_loop().create_task,
        )  # fmt: skip
        for index in range(60):
            prefetcher.on_read(OBJ, META, Span(index * B, index * B + B - 1))
        await asyncio.sleep(0)

    asyncio.run(go())
    assert loaded == [40]
    # Without the memory of what was found cached, a 16-block window asks ~16 times per read.
    assert len(asked) < 2 * 60 + 16
    assert set(range(2, 60)) <= set(asked)
