#!/usr/bin/env python3
"""Upstream (cold-path) HTTP client benchmark for s3tier: httpx vs aiohttp.

Self-contained: starts a minimal origin (bare ASGI app, uvicorn + uvloop +
httptools, one worker) in a subprocess on a free 127.0.0.1 port, then drives
it from this process with each client under uvloop:

  * 64 concurrent tasks, GET /small (1 KiB) -> requests/s
                         GET /large (1 MiB) -> MB/s (10^6 bytes)
  * bodies are read fully, in chunks, the way a streaming proxy would
  * client CPU per request = time.process_time() delta / requests
  * origin CPU and whole-machine CPU over the same window, from /proc
  * every measurement is repeated (default 3x), clients interleaved,
    median [min-max] reported as a markdown table.

Usage:  .venv/bin/python benchmarks/upstream_client.py [--duration S] [--warmup S]
        [--reps N] [--variants a,b,...]   (--list shows variant names)

The origin subprocess is killed by PID on every exit path; a SIGALRM watchdog
bounds the whole run (default 115 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time

SMALL = 1024
LARGE = 1 << 20
CHUNK = 1 << 20
CONCURRENCY = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# --------------------------------------------------------------------------
# Origin server (runs in the subprocess)
# --------------------------------------------------------------------------


def _origin_app():
    bodies = {"/small": b"s" * SMALL, "/large": b"L" * LARGE}
    starts = {
        p: {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(b)).encode()),
                (b"content-type", b"application/octet-stream"),
            ],
        }
        for p, b in bodies.items()
    }
    msgs = {p: {"type": "http.response.body", "body": b} for p, b in bodies.items()}
    not_found_start = {
        "type": "http.response.start",
        "status": 404,
        "headers": [(b"content-length", b"0")],
    }
    not_found_body = {"type": "http.response.body", "body": b""}

    async def app(scope, receive, send):
        # Honours GET /small and GET /large; everything else is a 404.
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "GET" and path in msgs:
            await send(starts[path])
            await send(msgs[path])
        else:
            await send(not_found_start)
            await send(not_found_body)

    return app


def serve_origin(fd: int) -> None:
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        _origin_app(),
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        backlog=1024,
    )
    uvicorn.Server(config).run(sockets=[sock])


# --------------------------------------------------------------------------
# Process bookkeeping
# --------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process (and its reaped children) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def machine_busy_seconds() -> float:
    """Busy CPU seconds summed over all cores (from /proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return (sum(vals[:8]) - idle) / CLK_TCK


class Origin:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # loopback only, free port
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        fd = sock.fileno()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--origin-fd", str(fd)],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
        finally:
            sock.close()  # the child holds its own copy
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"origin exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := c.recv(65536):
                        data += chunk
                    if data.startswith(b"HTTP/1.1 200") and data.endswith(b"s" * SMALL):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("origin did not come up within 15 s")
            time.sleep(0.05)

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=3)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------
# Clients. Each factory returns (open, fetch, close):
#   open()            -> client object (called inside the running loop)
#   fetch(client,url) -> number of body bytes read
#   close(client)
# --------------------------------------------------------------------------


def _sniffio_importable() -> bool:
    import importlib.util

    return "sniffio" in sys.modules or importlib.util.find_spec("sniffio") is not None


def _install_sniffio_shim():
    """httpcore 1.0.x does `import sniffio` inside current_async_library(),
    which runs for every lock/event/semaphore it creates (several per
    request).  anyio >= 4.11 no longer pulls sniffio in, so in a fresh venv
    that import fails every time -- and failed imports are not cached, so
    each one walks sys.path (encode/httpcore PR #1103).  `pip install sniffio`
    makes it a dict lookup; this shim emulates that for the duration of a run
    when the real package is absent.  Returns an undo callable."""
    if _sniffio_importable():
        return lambda: None
    import types

    shim = types.ModuleType("sniffio")

    def current_async_library():
        if asyncio.current_task() is not None:  # what sniffio checks for asyncio
            return "asyncio"
        raise RuntimeError("unknown async library, or not in async context")

    shim.current_async_library = current_async_library
    sys.modules["sniffio"] = shim
    return lambda: sys.modules.pop("sniffio", None)


def _httpx_variant(
    *,
    tuned: bool = False,
    chunk: int | None = CHUNK,
    read_num_bytes: int | None = None,
    sniffio: bool = False,
    shards: int = 1,
):
    """tuned: AsyncHTTPTransport(retries=0, trust_env=False) + client trust_env=False.
    chunk: aiter_raw() chunk size (None = pass network reads through un-rechunked).
    read_num_bytes: override httpcore's 64 KiB socket read size.
    sniffio: make `import sniffio` succeed (see _install_sniffio_shim).
    shards: split the 64 connections over N AsyncClients of 64/N each (httpcore's
    pool does O(waiting x connections) work per request, so smaller pools are cheaper)."""
    import httpcore._async.http11 as h11mod
    import httpx

    per = CONCURRENCY // shards
    undo = []

    def make():
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        timeout = httpx.Timeout(30.0)
        if tuned:
            transport = httpx.AsyncHTTPTransport(
                limits=limits, http1=True, http2=False, retries=0, trust_env=False
            )
            return httpx.AsyncClient(transport=transport, trust_env=False, timeout=timeout)
        return httpx.AsyncClient(limits=limits, http1=True, http2=False, timeout=timeout)

    async def open_():
        if read_num_bytes is not None:
            old = h11mod.AsyncHTTP11Connection.READ_NUM_BYTES
            h11mod.AsyncHTTP11Connection.READ_NUM_BYTES = read_num_bytes
            undo.append(lambda: setattr(h11mod.AsyncHTTP11Connection, "READ_NUM_BYTES", old))
        if sniffio:
            undo.append(_install_sniffio_shim())
        return {"clients": [make() for _ in range(shards)], "by_task": {}}

    async def fetch(st, url):
        if shards == 1:
            client = st["clients"][0]
        else:
            task = asyncio.current_task()
            client = st["by_task"].get(task)
            if client is None:
                client = st["clients"][len(st["by_task"]) % shards]
                st["by_task"][task] = client
        n = 0
        async with client.stream("GET", url) as r:
            if r.status_code != 200:
                raise RuntimeError(f"status {r.status_code}")
            async for part in r.aiter_raw(chunk):
                n += len(part)
        return n

    async def close(st):
        try:
            for c in st["clients"]:
                await c.aclose()
        finally:
            while undo:
                undo.pop()()

    return open_, fetch, close


def _aiohttp_variant(*, any_chunks: bool):
    import aiohttp

    async def open_():
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=30),
            auto_decompress=False,
        )

    async def fetch(session, url):
        n = 0
        async with session.get(url) as r:
            if r.status != 200:
                raise RuntimeError(f"status {r.status}")
            it = r.content.iter_any() if any_chunks else r.content.iter_chunked(CHUNK)
            async for part in it:
                n += len(part)
        return n

    async def close(session):
        await session.close()

    return open_, fetch, close


class _RawHTTP(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive client protocol: sends a GET, parses the
    status line and Content-Length, then only counts body bytes."""

    def __init__(self) -> None:
        self.transport = None
        self.waiter: asyncio.Future | None = None
        self.head = b""
        self.remaining = -1
        self.length = 0

    def connection_made(self, transport):
        self.transport = transport

    def get(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.head, self.remaining = b"", -1
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if self.remaining < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.head[:end].lower()
            if not head.startswith(b"http/1.1 200"):
                self.waiter.set_exception(RuntimeError(head[:40]))
                return
            i = head.index(b"content-length:") + 15
            j = head.find(b"\r\n", i)
            self.length = int(head[i : j if j >= 0 else None])
            self.remaining = self.length - (len(self.head) - end - 4)
            self.head = b""
        else:
            self.remaining -= len(data)
        if self.remaining == 0 and not self.waiter.done():
            self.waiter.set_result(self.length)

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or RuntimeError("connection closed"))


def _raw_variant():
    """Hand-written HTTP/1.1 client (one keep-alive connection per task,
    body bytes counted and dropped): the cheapest client we can write, so its
    figure approximates what the origin alone can deliver on this box."""

    async def open_():
        return {}  # task -> protocol

    async def fetch(conns, url):
        task = asyncio.current_task()
        proto = conns.get(task)
        host, port, path = _split(url)
        if proto is None:
            _, proto = await asyncio.get_running_loop().create_connection(_RawHTTP, host, port)
            conns[task] = proto
        return await proto.get(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: origin\r\n\r\n")

    async def close(conns):
        for proto in conns.values():
            proto.transport.close()

    return open_, fetch, close


def _split(url: str):
    rest = url.split("://", 1)[1]
    hostport, path = rest.split("/", 1)
    host, port = hostport.split(":")
    return host, int(port), "/" + path


VARIANTS = {
    # name: (label, factory)
    "httpx": (
        "httpx AsyncClient, Limits(64,64), http1, aiter_raw(1 MiB) -- as installed",
        lambda: _httpx_variant(),
    ),
    "httpx-tuned": (
        "httpx + AsyncHTTPTransport(retries=0), trust_env=False",
        lambda: _httpx_variant(tuned=True),
    ),
    "httpx-nochunk": (
        "httpx + aiter_raw() (no 1 MiB re-chunking)",
        lambda: _httpx_variant(chunk=None),
    ),
    "httpx-bigread": (
        "httpx + httpcore READ_NUM_BYTES=1 MiB",
        lambda: _httpx_variant(read_num_bytes=CHUNK),
    ),
    "httpx-sniffio": ("httpx + sniffio importable", lambda: _httpx_variant(sniffio=True)),
    "httpx-shard8": ("httpx + 8 AsyncClients x Limits(8,8)", lambda: _httpx_variant(shards=8)),
    "httpx-shard16": ("httpx + 16 AsyncClients x Limits(4,4)", lambda: _httpx_variant(shards=16)),
    "httpx-best": (
        "best httpx found: sniffio importable + 16 AsyncClients x Limits(4,4) (task-pinned) "
        "+ READ_NUM_BYTES=1 MiB + aiter_raw() + retries=0/trust_env=False",
        lambda: _httpx_variant(
            tuned=True, chunk=None, read_num_bytes=CHUNK, sniffio=True, shards=16
        ),
    ),
    "aiohttp": (
        "aiohttp ClientSession, TCPConnector(limit=64), iter_chunked(1 MiB)",
        lambda: _aiohttp_variant(any_chunks=False),
    ),
    "aiohttp-any": (
        "aiohttp ClientSession, TCPConnector(limit=64), iter_any()",
        lambda: _aiohttp_variant(any_chunks=True),
    ),
    "raw": (
        "hand-written HTTP/1.1 asyncio.Protocol, 64 keep-alive conns, body bytes counted "
        "and dropped: the cheapest possible client, i.e. roughly what the origin alone "
        "can serve here",
        _raw_variant,
    ),
}
DEFAULT_VARIANTS = "httpx,httpx-best,aiohttp,raw"


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


async def _measure(
    variant: str, url: str, expect: int, warmup: float, duration: float, origin_pid: int
):
    open_, fetch, close = VARIANTS[variant][1]()
    client = await open_()
    state = {"measuring": False, "stop": False, "reqs": 0, "bytes": 0}
    errors: list[BaseException] = []

    async def worker():
        while not state["stop"]:
            n = await fetch(client, url)
            if n != expect:
                raise RuntimeError(f"short body: {n} != {expect}")
            if state["measuring"]:
                state["reqs"] += 1
                state["bytes"] += n

    tasks = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
    try:
        await asyncio.sleep(warmup)
        _check(tasks)
        t0, c0 = time.perf_counter(), time.process_time()
        o0, m0 = proc_cpu_seconds(origin_pid), machine_busy_seconds()
        state["measuring"] = True
        await asyncio.sleep(duration)
        state["measuring"] = False
        t1, c1 = time.perf_counter(), time.process_time()
        o1, m1 = proc_cpu_seconds(origin_pid), machine_busy_seconds()
        _check(tasks)
        state["stop"] = True
    finally:
        state["stop"] = True
        for t in tasks:
            t.cancel()
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                errors.append(r)
        await close(client)
    if errors:
        raise errors[0]
    wall = t1 - t0
    reqs = state["reqs"]
    return {
        "reqs": reqs,
        "rps": reqs / wall,
        "mbps": state["bytes"] / wall / 1e6,
        "cpu_per_req": (c1 - c0) / reqs if reqs else float("nan"),
        "client_cores": (c1 - c0) / wall,
        "origin_cores": (o1 - o0) / wall,
        "origin_cpu_per_req": (o1 - o0) / reqs if reqs else float("nan"),
        "machine_cores": (m1 - m0) / wall,
    }


def _check(tasks):
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()


def run_one(variant, url, expect, warmup, duration, origin_pid):
    import uvloop

    gc.collect()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            asyncio.wait_for(
                _measure(variant, url, expect, warmup, duration, origin_pid),
                timeout=warmup + duration + 20,
            )
        )


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def _fmt(vals, scale=1.0, nd=0):
    vals = [v * scale for v in vals]
    med = statistics.median(vals)
    return f"{med:,.{nd}f} [{min(vals):,.{nd}f}\u2013{max(vals):,.{nd}f}]"


def report(results, variants, args, background):
    def col(v, path, key):
        return [r[key] for r in results[(v, path)]]

    def med(v, path, key):
        return statistics.median(col(v, path, key))

    out = [
        f"{args.reps} runs each, clients interleaved; {CONCURRENCY} concurrent tasks; "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured; uvloop. "
        f"Cells: median [min\u2013max]. CPU = client process "
        f"time.process_time() per request. cores = CPU-seconds per wall-second (box has {NCPU}): "
        f"client / origin / everything else on the box.",
        "",
        "| client | /small req/s | CPU µs/req | cores (small) client / origin / other "
        "| /large MB/s | CPU ms/req (1 MiB) | cores (large) |",
        "|---|---|---|---|---|---|---|",
    ]

    def cores(v, path):
        c, o, m = (med(v, path, k) for k in ("client_cores", "origin_cores", "machine_cores"))
        return f"{c:.2f} / {o:.2f} / {max(0.0, m - c - o):.2f}"

    for v in variants:
        out.append(
            f"| `{v}` | {_fmt(col(v, 'small', 'rps'))} "
            f"| {_fmt(col(v, 'small', 'cpu_per_req'), 1e6, 0)} | {cores(v, 'small')} "
            f"| {_fmt(col(v, 'large', 'mbps'))} "
            f"| {_fmt(col(v, 'large', 'cpu_per_req'), 1e3, 2)} | {cores(v, 'large')} |"
        )
    out.append("")
    for v in variants:
        out.append(f"- `{v}`: {VARIANTS[v][0]}")
    out.append("")
    if "raw" in variants:
        small_us = med("raw", "small", "origin_cpu_per_req") * 1e6
        large_ms = med("raw", "large", "origin_cpu_per_req") * 1e3
        out.append(
            f"Origin alone (driven by `raw`): {med('raw', 'small', 'rps'):,.0f} req/s small "
            f"using {med('raw', 'small', 'origin_cores'):.2f} core ({small_us:.0f} µs/req), "
            f"{med('raw', 'large', 'mbps'):,.0f} MB/s large "
            f"using {med('raw', 'large', 'origin_cores'):.2f} core ({large_ms:.2f} ms/req). "
            f"It is one single-threaded process, so it can use at most 1 of the {NCPU} cores; "
            f"the client process gets the other."
        )
    out.append(f"Background load on the box before the run: {background:.2f} cores busy.")
    return "\n".join(out)


# --------------------------------------------------------------------------


def _versions():
    import aiohttp
    import httpcore
    import httptools
    import httpx
    import uvicorn
    import uvloop

    return (
        f"sniffio importable: {'yes' if _sniffio_importable() else 'no'}, "
        f"python {platform.python_version()}, httpx {httpx.__version__}, "
        f"httpcore {httpcore.__version__}, aiohttp {aiohttp.__version__}, "
        f"uvicorn {uvicorn.__version__}, uvloop {uvloop.__version__}, "
        f"httptools {httptools.__version__}, nproc {NCPU}, {platform.machine()}"
    )


class Watchdog(Exception):
    pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--origin-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--duration", type=float, default=3.0, help="measured seconds per run (default 3)"
    )
    ap.add_argument(
        "--warmup", type=float, default=0.5, help="warm-up seconds per run (default 0.5)"
    )
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma list (default {DEFAULT_VARIANTS})"
    )
    ap.add_argument(
        "--budget", type=float, default=115.0, help="hard wall-clock limit in s (default 115)"
    )
    ap.add_argument("--list", action="store_true", help="list variants and exit")
    args = ap.parse_args(argv)

    if args.origin_fd is not None:
        serve_origin(args.origin_fd)
        return 0
    if args.list:
        for k, (label, _) in VARIANTS.items():
            print(f"{k:15s} {label}")
        return 0

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; try --list")
    est = len(variants) * 2 * args.reps * (args.warmup + args.duration + 0.3) + 4
    if est > args.budget:
        ap.error(
            f"plan needs ~{est:.0f} s, over the {args.budget:g} s budget; lower --duration/--reps"
        )

    def on_alarm(signum, frame):
        raise Watchdog(f"watchdog: exceeded {args.budget:g} s")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(args.budget) + 1)

    origin = Origin()
    started = time.monotonic()
    try:
        m0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        background = (machine_busy_seconds() - m0) / (time.monotonic() - t0)
        origin.start()
        base = f"http://127.0.0.1:{origin.port}"
        print(f"# upstream client benchmark — {_versions()}", flush=True)
        print(f"# origin pid {origin.proc.pid} on {base}; plan ~{est:.0f} s", flush=True)
        results: dict[tuple[str, str], list[dict]] = {}
        for rep in range(args.reps):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for path, expect in (("small", SMALL), ("large", LARGE)):
                for v in order:
                    r = run_one(
                        v, f"{base}/{path}", expect, args.warmup, args.duration, origin.proc.pid
                    )
                    results.setdefault((v, path), []).append(r)
                    print(
                        f"  rep {rep + 1} /{path:5s} {v:14s} {r['rps']:9,.0f} req/s "
                        f"{r['mbps']:8,.0f} MB/s "
                        f"client {r['cpu_per_req'] * 1e6:8.1f} µs/req  cores c/o/m "
                        f"{r['client_cores']:.2f}/{r['origin_cores']:.2f}/{r['machine_cores']:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
        print()
        print(report(results, variants, args, background))
        print(f"\n_total wall time {time.monotonic() - started:.0f} s_")
        return 0
    finally:
        signal.alarm(0)
        origin.stop()


if __name__ == "__main__":
    sys.exit(main())
