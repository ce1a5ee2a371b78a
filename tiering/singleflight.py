"""Single flight: one run of a piece of work however many callers want it at the same time.

The work runs in a task of its own, and callers await its future through `asyncio.shield`, so
a caller that is cancelled (a client that disconnects) stops waiting without stopping the work
the other callers depend on. A run may hand its value out before it is over (`Done.settle`): a
block is served while its disk write still runs, and its key stays taken until the write has
landed, so nobody fetches the block again meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Spawn = Callable[[Coroutine[Any, Any, Any]], object]


@dataclass(frozen=True, slots=True)
class Done(Generic[V]):
    """What a run produced, and the work to finish before its key is free again."""

    value: V
    settle: Awaitable[object] | None = None


class SingleFlight(Generic[K, V]):
    """Runs under way, by key."""

    def __init__(self, spawn: Spawn, on_join: Callable[[], None] = lambda: None) -> None:
        self._spawn = spawn
        self._on_join = on_join  # a caller joined a run rather than starting one (a metric)
        self._running: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._running

    def running(self, key: K) -> asyncio.Future[V] | None:
        """The run under way for `key`, if any."""
        return self._running.get(key)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The value of the run under way for `key`, or of a new run of `work`."""
        future, _ = self.join(key, lambda: _done(work()))
        return await asyncio.shield(future)

    def join(
        self, key: K, work: Callable[[], Awaitable[Done[V]]]
    ) -> tuple[asyncio.Future[V], bool]:
        """The future of the run under way for `key` and True, or of a new run and False.
        `work` is called at once, so what it reads (a write epoch) is read at the start."""
        running = self._running.get(key)
        if running is not None:
            self._on_join()
            return running, True
        future = asyncio.get_running_loop().create_future()
        self._running[key] = future
        self._spawn(self._fly(key, future, work()))
        return future, False

    def hold(self, key: K, value: V, settle: Callable[[], Awaitable[object]]) -> None:
        """A finished run of `key` giving `value` until `settle()` is done, unless a run is
        under way (then `settle` is not called)."""
        if key in self._running:
            return
        future = asyncio.get_running_loop().create_future()
        future.set_result(value)
        self._running[key] = future
        self._spawn(self._settle(key, future, settle()))

    def forget(self, key: K) -> None:
        """The next caller starts a new run; the current one still answers its own callers."""
        self._running.pop(key, None)

    async def _fly(self, key: K, future: asyncio.Future[V], work: Awaitable[Done[V]]) -> None:
        try:
            done = await work
            future.set_result(done.value)
            if done.settle is not None:
                await done.settle
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: the callers may all have gone away
            if not isinstance(exc, Exception):
                raise
        finally:
            self._release(key, future)

    async def _settle(self, key: K, future: asyncio.Future[V], settle: Awaitable[object]) -> None:
        try:
            await settle
        finally:
            self._release(key, future)

    def _release(self, key: K, future: asyncio.Future[V]) -> None:
        if self._running.get(key) is future:
            del self._running[key]


async def _done(work: Awaitable[V]) -> Done[V]:
    return Done(await work)
