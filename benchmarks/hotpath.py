"""The RAM-hit hot path in isolation: server CPU per request for one small cached object.

Starts moto and one s3tier process on loopback, caches one object, then drives it with an
aiohttp client (64 connections) for a few seconds, three times, printing requests/s and the
server's CPU microseconds per request (from /proc: robust to other load on the machine, unlike
requests/s). With --profile, py-spy records the server meanwhile (folded stacks to a file).

    .venv/bin/python benchmarks/hotpath.py [--size 4096] [--workers 1] [--profile out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import MotoServer, S3TierServer, s3_client


async def drive(url: str, seconds: float, connections: int = 64) -> int:
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
        end = time.monotonic() + seconds

        async def one() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with s.get(url) as response:
                    await response.read()
                    done += 1

        await asyncio.gather(*(one() for _ in range(connections)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--workers", default="1")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--profile", metavar="FILE")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="s3tier-hotpath-"))
    moto = MotoServer(workdir)
    moto.start()
    server = S3TierServer(workdir, moto.url, "--freshness", "immutable", "--workers", args.workers)
    server.start()
    try:
        client = s3_client(moto.url)
        client.create_bucket(Bucket="bench")
        client.put_object(Bucket="bench", Key="obj", Body=os.urandom(args.size))
        url = f"{server.url}/bench/obj"
        asyncio.run(drive(url, 0.5))  # fill the cache, warm up
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(server.pid),
                 "-d", str(int(args.seconds * 3) + 1), "-o", args.profile, "-f", "raw"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for _ in range(3):
            before = sum(sum(p.cpu_times()[:2]) for p in processes)
            count = asyncio.run(drive(url, args.seconds))
            after = sum(sum(p.cpu_times()[:2]) for p in processes)
            print(
                f"{count / args.seconds:8.0f} requests/s   "
                f"{(after - before) / count * 1e6:6.1f} us server CPU per request"
            )
        if profiler is not None:
            profiler.wait()
    finally:
        server.stop()
        moto.stop()


if __name__ == "__main__":
    main()
