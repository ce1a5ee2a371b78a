"""Issue 11's server candidates, bare: how fast can each answer a prebuilt 4 KiB hit at all?

    .venv/bin/python benchmarks/candidates.py --granian /path/to/granian [--workers 1 2]

Each candidate answers every GET with the same prebuilt answer W1 gets from s3tier (status
line, 12 S3 headers, 4 KiB body), with no cache, no lookup and no S3 logic: the ceiling of the
server itself. wrk drives each as W1 drives s3tier (2 threads, 64 connections); the server's
CPU per request comes from its process tree. Candidates:

- `protocol`: an own `asyncio.Protocol` on uvloop + httptools (candidate b's ceiling)
- `granian`: granian's RSGI interface, `response_bytes` (candidate c). granian is not a
  dependency of the project; install it anywhere (`pip install granian`) and pass its path.

Candidate a, the fast path inside uvicorn's protocol, is s3tier itself: `make bench`'s W1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from servers import cpu_by_pid, cpu_delta, find_tool  # noqa: E402

PORT = 47311
BODY = b"x" * 4096
HEADERS = [
    (b"accept-ranges", b"bytes"),
    (b"content-length", b"4096"),
    (b"content-type", b"binary/octet-stream"),
    (b"etag", b'"0f343b0931126a20f133d67c2b018a3b"'),
    (b"last-modified", b"Thu, 03 Dec 2026 08:00:00 GMT"),
    (b"x-amz-checksum-crc32", b"AAAAAA=="),
    (b"x-amz-request-id", b"0123456789ABCDEF"),
    (b"x-amz-id-2", b"b" * 76),
    (b"x-cache-status", b"HIT-RAM"),
    (b"server", b"s3tier"),
    (b"date", b"Thu, 03 Dec 2026 08:00:00 GMT"),
    (b"x-amz-server-side-encryption", b"AES256"),
]

PROTOCOL_APP = f"""
import asyncio, httptools, uvloop
ANSWER = b"HTTP/1.1 200 OK\\r\\n" + b"".join(n + b": " + v + b"\\r\\n" for n, v in {HEADERS!r})
ANSWER += b"\\r\\n" + {BODY!r}
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
        self.p = httptools.HttpRequestParser(self)
    def data_received(self, data):
        self.p.feed_data(data)
    def on_message_complete(self):
        self.t.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", {PORT})
    await server.serve_forever()
uvloop.run(main())
"""

RSGI_APP = f"""
HEADERS = [(n.decode(), v.decode()) for n, v in {HEADERS!r} if n != b"content-length"]
BODY = {BODY!r}
async def app(scope, proto):
    proto.response_bytes(200, HEADERS, BODY)
"""


def measure(argv: list[str], wrk: str, cwd: Path) -> tuple[float, float]:
    """req/s and server CPU µs per request of one candidate under wrk."""
    server = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not any(c.laddr.port == PORT for c in psutil.net_connections("tcp4")
                      if c.status == "LISTEN"):  # fmt: skip
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.1)
        url = f"http://127.0.0.1:{PORT}/bucket/key"
        subprocess.run([wrk, "-t2", "-c64", "-d2s", url], capture_output=True, check=True)
        before = cpu_by_pid(server.pid)
        out = subprocess.run(
            [wrk, "-t2", "-c64", "-d6s", url], capture_output=True, text=True, check=True
        ).stdout
        cpu_s = cpu_delta(before, cpu_by_pid(server.pid))
        requests = int(next(line for line in out.splitlines() if "requests in" in line).split()[0])
        seconds = 6.0
        return requests / seconds, cpu_s / requests * 1e6
    finally:
        for child in psutil.Process(server.pid).children(recursive=True):
            child.terminate()
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--granian", help="the granian executable (candidate c)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    wrk = find_tool("wrk")
    if wrk is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bare.py").write_text(PROTOCOL_APP, encoding="utf-8")
        (folder / "rsgiapp.py").write_text(RSGI_APP, encoding="utf-8")
        rows = [("protocol, 1 process", [sys.executable, "bare.py"])]
        if args.granian:
            for n in args.workers:
                argv = [args.granian, "--interface", "rsgi", "--host", "127.0.0.1"]
                argv += ["--port", str(PORT), "--workers", str(n), "--http", "1", "--no-ws"]
                argv.append("rsgiapp:app")
                rows.append((f"granian rsgi, {n} worker(s)", argv))
        print("| candidate | req/s | server CPU per request |\n|---|---|---|")
        for name, argv in rows:
            rate, cpu_us = measure(argv, wrk, folder)
            print(f"| {name} | {rate:,.0f} | {cpu_us:.1f} µs |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
