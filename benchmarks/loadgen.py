"""The two load generators: wrk for throughput, an aiohttp client where bytes or first bytes
must be counted.

wrk cycles through a key list (`keys.lua`) and prints its summary as JSON from its `done`
callback. The aiohttp client fetches a list of requests with bounded concurrency and keeps,
per request, the status, body length, time to first body byte and X-Cache-Status.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

KEYS_LUA = Path(__file__).with_name("keys.lua")


class LoadError(RuntimeError):
    """A load generator failed, or the server answered with errors."""


@dataclass(frozen=True, slots=True)
class Req:
    """One request of a key list: a path, a Range value or nothing, and any other headers
    (W1s: a SigV4 signature made in advance)."""

    path: str
    range: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def line(self) -> str:
        """`path[\trange[\tName: value]...]`, as keys.lua reads it."""
        if not self.headers:
            return self.path if self.range is None else f"{self.path}\t{self.range}"
        fields = [self.path, self.range or "", *(f"{n}: {v}" for n, v in self.headers)]
        return "\t".join(fields)


def write_keyfile(path: Path, requests: Sequence[Req]) -> Path:
    path.write_text("".join(r.line() + "\n" for r in requests), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Wrk:
    """How wrk is run: threads, connections, seconds."""

    binary: str
    threads: int
    connections: int
    duration_s: float
    timeout_s: float = 10.0

    def run(self, url: str, keyfile: Path, duration_s: float | None = None) -> dict[str, object]:
        seconds = max(1, round(duration_s if duration_s is not None else self.duration_s))
        argv = [self.binary, f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s"]
        argv += [f"--timeout={self.timeout_s:g}s", "-s", str(KEYS_LUA), url, "--"]
        argv += [str(keyfile), str(self.threads)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + self.timeout_s + 30
            )
        except subprocess.TimeoutExpired as exc:  # subprocess.run kills it by PID
            raise LoadError(f"wrk overran: {' '.join(argv)}") from exc
        lines = [x for x in done.stdout.splitlines() if x.startswith('{"wrk"')]
        if done.returncode != 0 or not lines:
            raise LoadError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        result: dict[str, object] = json.loads(lines[-1])["wrk"]
        return result


@dataclass(slots=True)
class Fetched:
    status: int
    body_bytes: int
    ttfb_s: float
    total_s: float
    cache_status: str


async def fetch_one(session: aiohttp.ClientSession, url: str, req: Req) -> Fetched:
    headers = dict(req.headers)
    if req.range is not None:
        headers["Range"] = req.range
    started = time.perf_counter()
    async with session.get(url + req.path, headers=headers) as answer:
        first = await answer.content.readany()
        ttfb = time.perf_counter() - started
        size = len(first)
        while piece := await answer.content.readany():
            size += len(piece)
        return Fetched(
            answer.status,
            size,
            ttfb,
            time.perf_counter() - started,
            answer.headers.get("X-Cache-Status", "-"),
        )


def session(connections: int, timeout_s: float = 120) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        auto_decompress=False,
    )


async def fetch_many(
    url: str, requests: Sequence[Req], concurrency: int, timeout_s: float = 120
) -> list[Fetched]:
    """Fetch every request, `concurrency` at a time, in list order; answers in list order."""
    out: list[Fetched | None] = [None] * len(requests)
    queue = iter(enumerate(requests))
    async with session(concurrency, timeout_s) as http:

        async def worker() -> None:
            for index, req in queue:
                out[index] = await fetch_one(http, url, req)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [f for f in out if f is not None]


async def fetch_together(url: str, req: Req, count: int, timeout_s: float = 120) -> list[Fetched]:
    """`count` GETs of the same request, all started at once on their own connections."""
    async with session(count, timeout_s) as http:
        return list(await asyncio.gather(*(fetch_one(http, url, req) for _ in range(count))))


def run(coro: object, timeout_s: float) -> object:
    """Run a coroutine on a fresh loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))  # type: ignore[arg-type]


def check(fetched: Sequence[Fetched], expect_bytes: Sequence[int] | None = None) -> None:
    bad = [f for f in fetched if f.status not in (200, 206)]
    if bad:
        raise LoadError(f"{len(bad)} of {len(fetched)} answers failed, e.g. status {bad[0].status}")
    if expect_bytes is not None:
        short = [
            (f.body_bytes, n)
            for f, n in zip(fetched, expect_bytes, strict=True)
            if f.body_bytes != n
        ]
        if short:
            raise LoadError(f"{len(short)} short bodies, e.g. {short[0][0]} of {short[0][1]} bytes")
