"""Written bodies cached off the writer's path.

A PUT is answered as soon as the upstream has accepted it; its body, held aside meanwhile,
enters the cache in the background (its first read then confirms it with one HEAD before
anything is served from it: tiering/resolver.py). A read of the object that arrives while its
body is still going in waits for it, so a PUT then a GET finds the blocks.

Bounded by the bytes held aside: past the budget, a writer waits for its own body to go in,
so a burst of writes slows down rather than piles up.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from tiering.blocks import ObjectId

Work = Coroutine[Any, Any, None]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Adoptions:
    """Written bodies going into the cache, by object, and the bytes they hold."""

    def __init__(self, spawn: Spawn, budget_bytes: int) -> None:
        self._spawn = spawn
        self._budget = budget_bytes
        self._held = 0
        self._pending: dict[ObjectId, asyncio.Task[None]] = {}
        self.inline = 0  # bodies a writer waited for: the budget was spent

    @property
    def held_bytes(self) -> int:
        return self._held

    def later(self, obj: ObjectId, size: int, work: Work, abandoned: Callable[[], None]) -> bool:
        """Run `work` in the background if `size` more bytes fit the budget; False (and the
        caller awaits `work` itself) if they do not. `abandoned()` lets go of what `work`
        holds if it is cancelled (at shutdown) before it could start."""
        if self._held + size > self._budget:
            self.inline += 1
            return False
        self._held += size
        task = self._spawn(work)
        self._pending[obj] = task
        task.add_done_callback(functools.partial(self._ended, obj, size, work, abandoned))
        return True

    def _ended(
        self,
        obj: ObjectId,
        size: int,
        work: Work,
        abandoned: Callable[[], None],
        task: asyncio.Task[None],
    ) -> None:
        self._held -= size
        if self._pending.get(obj) is task:
            del self._pending[obj]
        if task.cancelled():
            work.close()
            abandoned()

    def pending(self, obj: ObjectId) -> asyncio.Task[None] | None:
        """The body of this object going into the cache, if any: a reader waits for it with
        `asyncio.wait`, so that a reader that leaves does not cancel it."""
        return self._pending.get(obj)
