"""Warm-up jobs: pull a prefix, or a list of keys, into the cache ahead of the readers.

A job runs in the server, so the CLI and the admin surface share it: one lists, a few workers
pull objects block by block through the read-through path (so coalescing and the tiers'
policies apply), and the progress is there to read at any moment, or to cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from tiering.blocks import ObjectId

log = logging.getLogger("s3tier.warmup")
Tier = Literal["ram", "disk"]
State = Literal["listing", "warming", "done", "cancelled", "failed"]
Lister = Callable[[str, str], AsyncIterator[tuple[str, int]]]
Warmer = Callable[[ObjectId, bool], Awaitable[int]]


@dataclass(slots=True)
class WarmJob:
    """One warm-up and its progress so far."""

    id: str
    bucket: str
    prefix: str | None
    keys: tuple[str, ...]
    tier: Tier
    concurrency: int
    started_at: float
    state: State = "listing"
    objects_total: int = 0
    objects_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    errors: int = 0
    finished_at: float | None = None
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self, now: float) -> dict[str, object]:
        """Progress as JSON: counts, rate and an ETA once the total is known."""
        elapsed = max((self.finished_at or now) - self.started_at, 1e-9)
        rate = self.bytes_done / elapsed
        left = self.bytes_total - self.bytes_done
        eta = left / rate if self.state == "warming" and rate > 0 else None
        return {
            "id": self.id,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "keys": len(self.keys),
            "tier": self.tier,
            "state": self.state,
            "objects_total": self.objects_total,
            "objects_done": self.objects_done,
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "errors": self.errors,
            "last_error": self.last_error,
            "elapsed_s": round(elapsed, 3),
            "rate_bytes_per_s": round(rate),
            "eta_s": None if eta is None else round(eta, 1),
        }


class WarmJobs:
    """The server's warm-up jobs, by id."""

    def __init__(
        self, lister: Lister, warmer: Warmer, clock: Callable[[], float] = time.time
    ) -> None:
        self._lister = lister
        self._warmer = warmer
        self._clock = clock
        self._jobs: dict[str, WarmJob] = {}

    def start(
        self,
        bucket: str,
        prefix: str | None = None,
        keys: tuple[str, ...] = (),
        tier: Tier = "disk",
        concurrency: int = 4,
    ) -> WarmJob:
        job = WarmJob(uuid.uuid4().hex[:12], bucket, prefix, keys, tier, concurrency, self._clock())
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> WarmJob | None:
        return self._jobs.get(job_id)

    def all(self) -> list[WarmJob]:
        return list(self._jobs.values())

    def cancel(self, job_id: str) -> WarmJob | None:
        job = self._jobs.get(job_id)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()
        return job

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: WarmJob) -> None:
        try:
            targets = await self._targets(job)
            job.state = "warming"
            queue: asyncio.Queue[str] = asyncio.Queue()
            for key in targets:
                queue.put_nowait(key)
            workers = [self._work(job, queue) for _ in range(max(job.concurrency, 1))]
            await asyncio.gather(*workers)
            job.state = "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
        except Exception as exc:  # the job fails, the server does not
            job.state, job.last_error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("warm-up %s failed: %s", job.id, job.last_error)
        finally:
            job.finished_at = self._clock()

    async def _targets(self, job: WarmJob) -> list[str]:
        if job.keys:
            job.objects_total = len(job.keys)
            return list(job.keys)
        keys = []
        async for key, size in self._lister(job.bucket, job.prefix or ""):
            keys.append(key)
            job.objects_total += 1
            job.bytes_total += size
        return keys

    async def _work(self, job: WarmJob, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            try:
                size = await self._warmer(ObjectId(job.bucket, key), job.tier == "ram")
                job.bytes_done += size
                if job.keys:
                    job.bytes_total += size
            except Exception as exc:  # one object's failure does not stop the others
                job.errors += 1
                job.last_error = f"{key}: {type(exc).__name__}: {exc}"
            job.objects_done += 1
