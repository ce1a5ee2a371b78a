"""A recording, fault-injecting HTTP proxy between s3tier and the real upstream, for tests.

It runs on its own event loop in a background thread of the test process, so tests read what
it recorded directly. It forwards every request unchanged to the target (moto) and can be told
to break the next matching answer after k body bytes, which is what an upstream that dies
mid-transfer looks like from s3tier.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from tests.harness import free_port

HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass
class Recorded:
    method: str
    path: str  # raw path and query, as received
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Fault:
    """For the first request that matches: hold the upstream's answer back for `stall_s`, then
    break it after `after_bytes` of its body (None: deliver it whole)."""

    matches: Callable[[Recorded], bool]
    after_bytes: int | None
    stall_s: float = 0.0
    used: bool = False


@dataclass
class UpstreamShim:
    target: str
    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("shim did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def clear(self) -> None:
        self.requests.clear()

    def matching(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method) and contains in r.path
        ]

    def break_next(self, matches: Callable[[Recorded], bool], after_bytes: int) -> Fault:
        fault = Fault(matches, after_bytes)
        self.faults.append(fault)
        return fault

    def stall_next(self, matches: Callable[[Recorded], bool], seconds: float) -> Fault:
        fault = Fault(matches, None, stall_s=seconds)
        self.faults.append(fault)
        return fault

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await self._stopping.wait()
        await runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = Recorded(request.method, request.raw_path, dict(request.headers))
        record.started = time.monotonic()
        try:
            return await self._forward(request, record)
        finally:
            record.finished = time.monotonic()

    async def _forward(self, request: web.Request, record: Recorded) -> web.StreamResponse:
        self.requests.append(record)
        fault = next((f for f in self.faults if not f.used and f.matches(record)), None)
        if fault is not None:
            fault.used = True
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        url = URL(self.target + request.raw_path, encoded=True)
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as upstream:
            record.status = upstream.status
            if fault is not None:
                # The upstream has answered; s3tier sees nothing for a while (first-byte stall).
                await asyncio.sleep(fault.stall_s)
            out = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    out.headers.add(name, value)
            if upstream.content_length is not None:
                out.content_length = upstream.content_length
            await out.prepare(request)
            async for piece in upstream.content.iter_chunked(1 << 16):
                if (
                    fault is not None
                    and fault.after_bytes is not None
                    and (record.body_bytes + len(piece) > fault.after_bytes)
                ):
                    piece = piece[: fault.after_bytes - record.body_bytes]
                    await out.write(piece)
                    record.body_bytes += len(piece)
                    assert request.transport is not None
                    request.transport.close()
                    return out
                await out.write(piece)
                record.body_bytes += len(piece)
            await out.write_eof()
            return out
