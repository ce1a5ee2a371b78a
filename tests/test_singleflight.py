"""Single flight (tiering/singleflight.py): one run per key however many callers wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tiering.singleflight import Done, SingleFlight
from tiering.tasks import TaskSet

Flight = SingleFlight[str, Any]


def run(
    test: Callable[[Flight], Awaitable[None]], on_join: Callable[[], None] = lambda: None
) -> None:
    """Run `test` against a fresh SingleFlight whose tasks are reaped at the end."""

    async def go() -> None:
        tasks = TaskSet()
        try:
            await test(SingleFlight(tasks.spawn, on_join))
        finally:
            await tasks.close()

    asyncio.run(go())


def test_concurrent_callers_of_one_key_share_one_run() -> None:
    runs, joins = [], []

    async def test(flight: Flight) -> None:
        gate = asyncio.Event()

        async def work() -> int:
            runs.append(1)
            await gate.wait()
            return 42

        callers = [asyncio.create_task(flight.run("k", work)) for _ in range(32)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*callers) == [42] * 32
        assert "k" not in flight  # done: the next caller starts afresh

    run(test, lambda: joins.append(1))
    assert (len(runs), len(joins)) == (1, 31)


def test_a_cancelled_caller_does_not_cancel_the_run_others_wait_for() -> None:
    async def test(flight: Flight) -> None:
        gate = asyncio.Event()

        async def work() -> str:
            await gate.wait()
            return "done"

        leaver = asyncio.create_task(flight.run("k", work))
        stayer = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0)
        leaver.cancel()
        await asyncio.sleep(0)
        gate.set()
        assert await stayer == "done"
        assert leaver.cancelled()

    run(test)


def test_every_waiter_sees_a_failed_run_fail_and_the_key_is_free_again() -> None:
    async def test(flight: Flight) -> None:
        async def broken() -> int:
            await asyncio.sleep(0)
            raise OSError("upstream gone")

        callers = [asyncio.create_task(flight.run("k", broken)) for _ in range(3)]
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results)
        assert "k" not in flight

    run(test)


def test_a_value_handed_out_early_keeps_its_key_taken_until_it_settles() -> None:
    async def test(flight: Flight) -> None:
        written = asyncio.Event()

        async def work() -> Done[bytes]:
            return Done(b"block", settle=written.wait())

        future, joined = flight.join("k", work)
        assert (await asyncio.shield(future), joined) == (b"block", False)
        assert "k" in flight  # served, but its disk write has not landed
        assert flight.join("k", work) == (future, True)
        written.set()
        await asyncio.sleep(0.01)
        assert "k" not in flight

    run(test)


@pytest.mark.parametrize("running", [False, True])
def test_a_held_value_is_a_finished_run_unless_one_is_under_way(running: bool) -> None:
    settled = []

    async def test(flight: Flight) -> None:
        gate = asyncio.Event()

        async def work() -> Done[bytes]:
            await gate.wait()
            return Done(b"fetched")

        async def settle() -> None:
            settled.append(1)

        if running:
            flight.join("k", work)
        flight.hold("k", b"held", settle)
        future, _ = flight.join("k", work)
        gate.set()
        assert await future == (b"fetched" if running else b"held")
        await asyncio.sleep(0)

    run(test)
    assert settled == ([] if running else [1])
