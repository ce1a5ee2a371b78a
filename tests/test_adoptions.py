"""Confirmations of written objects in the background: bounded by the bytes they hold, one per
object visible to readers, and never cancelled by a reader that stops waiting."""

from __future__ import annotations

import asyncio

from tiering.adoptions import Adoptions
from tiering.blocks import ObjectId
from tiering.tasks import TaskSet

A, B = ObjectId("b", "a"), ObjectId("b", "b")


def test_past_the_byte_budget_the_writer_runs_its_confirmation_itself() -> None:
    async def go() -> None:
        tasks = TaskSet()
        adoptions = Adoptions(tasks.spawn, budget_bytes=10)
        release = asyncio.Event()
        ran: list[str] = []

        async def work(name: str) -> None:
            await release.wait()
            ran.append(name)

        assert adoptions.later(A, 8, work("a"), lambda: None)
        refused = work("b")
        # 16 bytes would be held: over the budget
        assert not adoptions.later(B, 8, refused, lambda: None)
        assert adoptions.inline == 1 and adoptions.held_bytes == 8
        assert adoptions.pending(A) is not None and adoptions.pending(B) is None
        release.set()
        await refused  # the caller's own
        pending = adoptions.pending(A)
        assert pending is not None
        await asyncio.wait([pending])
        assert sorted(ran) == ["a", "b"]
        assert adoptions.held_bytes == 0 and adoptions.pending(A) is None
        let_go: list[str] = []
        assert adoptions.later(B, 8, work("c"), lambda: let_go.append("c"))  # room again
        await tasks.close()  # shutdown before it started: what it held is let go
        assert let_go == ["c"] and adoptions.held_bytes == 0

    asyncio.run(go())


def test_a_later_write_of_the_same_object_is_the_one_readers_wait_for() -> None:
    async def go() -> None:
        tasks = TaskSet()
        adoptions = Adoptions(tasks.spawn, budget_bytes=100)
        first_done, second_done = asyncio.Event(), asyncio.Event()

        async def wait_for(event: asyncio.Event) -> None:
            await event.wait()

        adoptions.later(A, 1, wait_for(first_done), lambda: None)
        first = adoptions.pending(A)
        adoptions.later(A, 1, wait_for(second_done), lambda: None)
        second = adoptions.pending(A)
        assert first is not None and second is not None and first is not second
        first_done.set()
        await asyncio.wait([first])
        assert adoptions.pending(A) is second  # the first ending does not unlist the second
        reader = asyncio.get_running_loop().create_task(asyncio.wait([second]))
        await asyncio.sleep(0)
        reader.cancel()  # a reader that leaves
        await asyncio.sleep(0)
        assert not second.done()
        second_done.set()
        await asyncio.wait([second])
        assert adoptions.pending(A) is None and adoptions.held_bytes == 0
        await tasks.close()

    asyncio.run(go())
