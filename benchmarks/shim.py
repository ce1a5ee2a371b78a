"""A counting, optionally delaying HTTP shim between one server under test and the upstream.

    python benchmarks/shim.py --target http://127.0.0.1:5055 --port 5056

Every request is forwarded unchanged (Host included) to the target; the shim counts the body
bytes of each answer, so the benchmark knows exactly how many bytes a server pulled from the
upstream (W4, W5, W7). With a delay set, each request waits that long before it is forwarded:
added upstream latency for W6. Control, under a prefix no bucket name can start with:

    GET  /_shim/stats[?path=/bucket/key]  JSON counters (totals, or one path's)
    GET  /_shim/log                       the last requests: method, path, Range, status, bytes
    POST /_shim/reset                     zero the counters
    POST /_shim/config?delay_ms=20        set the added latency
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web
from yarl import URL

# RFC 9110 §7.6.1: hop-by-hop fields are not forwarded; lengths are re-framed by aiohttp.
HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
PIECE_BYTES = 1 << 18
LOG_ENTRIES = 2000  # the most recent requests, for a look at what a server asked for


@dataclass(slots=True)
class Counts:
    requests: int = 0
    body_bytes: int = 0
    get_requests: int = 0
    head_requests: int = 0


class Shim:
    """Forwards to `target`, counting per path and in total."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.delay_s = 0.0
        self.total = Counts()
        self.by_path: dict[str, Counts] = collections.defaultdict(Counts)
        self.log: collections.deque[list[object]] = collections.deque(maxlen=LOG_ENTRIES)
        self._session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        )

    async def stop(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action == "stats":
            path = request.query.get("path")
            counts = self.total if path is None else self.by_path.get(path, Counts())
            return web.json_response(asdict(counts))
        if action == "log":
            return web.json_response(list(self.log))
        if action == "reset" and request.method == "POST":
            self.total = Counts()
            self.by_path.clear()
            self.log.clear()
            return web.json_response({})
        if action == "config" and request.method == "POST":
            self.delay_s = float(request.query.get("delay_ms", "0")) / 1000
            return web.json_response({"delay_ms": self.delay_s * 1000})
        raise web.HTTPNotFound()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read() if request.body_exists else None
        url = URL(self.target + request.raw_path, encoded=True)
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        ) as upstream:
            out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP:
                    out.headers.add(name, value)
            if upstream.content_length is not None:
                out.content_length = upstream.content_length
            await out.prepare(request)
            fetched = 0
            try:
                async for piece in upstream.content.iter_chunked(PIECE_BYTES):
                    fetched += len(piece)  # counted as read from the upstream, sent or not
                    await out.write(piece)
                await out.write_eof()
            finally:
                self._count(request.method, request.path, fetched)
                self.log.append(
                    [
                        request.method,
                        request.path,
                        request.headers.get("Range"),
                        upstream.status,
                        fetched,
                    ]
                )
        return out

    def _count(self, method: str, path: str, body_bytes: int) -> None:
        for counts in (self.total, self.by_path[path]):
            counts.requests += 1
            counts.body_bytes += body_bytes
            counts.get_requests += method == "GET"
            counts.head_requests += method == "HEAD"


def build_app(target: str) -> web.Application:
    shim = Shim(target)
    app = web.Application(client_max_size=1 << 34)
    app.on_startup.append(shim.start)
    app.on_cleanup.append(shim.stop)
    app.router.add_route("*", "/_shim/{action}", shim.control)
    app.router.add_route("*", "/{tail:.*}", shim.forward)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="upstream base URL")
    parser.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency of s3tier
        pass
    print(json.dumps({"shim": args.port, "target": args.target}), flush=True)
    web.run_app(
        build_app(args.target),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
