"""The bench rig: the upstream and shims that live for the whole run, the two servers started
per workload, and the measurements taken around each load.

A measurement reads each server's CPU (utime + stime over its process tree) and the
machine's busy time before and after the load, and its RSS after. Servers are measured in
turn, the order flipped every repetition, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
from loadgen import Fetched, Req, Wrk
from servers import (
    MotoServer,
    Nginx,
    S3Tier,
    Shim,
    cpu_by_pid,
    cpu_delta,
    folder_bytes,
    rss_bytes,
    running,
)

GIB = 1 << 30
Log = Callable[[str], None]


@dataclass(slots=True)
class Target:
    """One server under test (or the upstream itself, for W6's baseline)."""

    name: str
    url: str
    pid: int | None
    shim: Shim | None
    cache_dir: Path | None = None  # where its disk cache lives, to watch its footprint


@dataclass(slots=True)
class Rig:
    """What lives for the whole run."""

    scratch: Path
    nginx_bin: str
    wrk_bin: str
    workers: int
    alt_workers: int | None
    moto: MotoServer
    shims: dict[str, Shim]
    log: Log

    @classmethod
    @contextlib.contextmanager
    def started(
        cls,
        scratch: Path,
        nginx_bin: str,
        wrk_bin: str,
        workers: int,
        alt_workers: int | None,
        log: Log,
    ) -> Iterator[Rig]:
        with contextlib.ExitStack() as stack:
            moto = stack.enter_context(running(MotoServer(scratch)))
            names = ["s3tier", "nginx", "direct"]
            if alt_workers is not None:
                names.append("s3tier-alt")
            shims = {n: stack.enter_context(running(Shim(scratch, n, moto.url))) for n in names}
            log(f"upstream: moto pid {moto.pid} on {moto.url}; shims {sorted(shims)}")
            yield cls(scratch, nginx_bin, wrk_bin, workers, alt_workers, moto, shims, log)

    @property
    def alt_name(self) -> str:
        return f"s3tier --workers {self.alt_workers}"

    @contextlib.contextmanager
    def servers(
        self,
        label: str,
        s3tier_flags: Sequence[str],
        nginx_max_size: str | None = None,
        with_alt: bool = False,
    ) -> Iterator[list[Target]]:
        """Fresh s3tier and nginx (empty caches) for one workload, stopped when it ends."""
        where = self.scratch / label
        where.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            targets: list[Target] = []
            s3tier_dir = where / "s3tier"
            s3tier_dir.mkdir(exist_ok=True)
            upstream = self.shims["s3tier"].url
            s3tier = stack.enter_context(
                running(S3Tier(s3tier_dir, upstream, self.workers, *s3tier_flags))
            )
            targets.append(
                Target("s3tier", s3tier.url, s3tier.pid, self.shims["s3tier"], s3tier.disk_dir)
            )
            nginx_upstream = self.shims["nginx"].hostport
            nginx = stack.enter_context(
                running(Nginx(where / "nginx", self.nginx_bin, nginx_upstream, nginx_max_size))
            )
            targets.append(
                Target("nginx", nginx.url, nginx.pid, self.shims["nginx"], nginx.cache_dir)
            )
            if with_alt and self.alt_workers is not None:
                alt_dir = where / "s3tier-alt"
                alt_dir.mkdir(exist_ok=True)
                shim = self.shims["s3tier-alt"]
                alt = stack.enter_context(
                    running(S3Tier(alt_dir, shim.url, self.alt_workers, *s3tier_flags))
                )
                targets.append(Target(self.alt_name, alt.url, alt.pid, shim, alt.disk_dir))
            for target in targets:
                assert target.shim is not None
                target.shim.reset()  # the readiness probes went through them
            yield targets

    def direct(self) -> Target:
        shim = self.shims["direct"]
        return Target("direct", shim.url, None, shim)

    def wrk(self, connections: int, duration_s: float) -> Wrk:
        return Wrk(self.wrk_bin, threads=2, connections=connections, duration_s=duration_s)


def in_turn(targets: Sequence[Target], rep: int) -> list[Target]:
    """The order servers are measured in repetition `rep`: flipped every other time."""
    return list(targets) if rep % 2 == 0 else list(reversed(targets))


def machine_busy_s() -> float:
    """Busy CPU seconds summed over all cores, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(x) for x in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def metered(target: Target, into: dict[str, Any]) -> Iterator[None]:
    """Record the server's CPU seconds, the machine's busy cores and wall time over the block,
    and the server's RSS after it."""
    pid = target.pid
    before = cpu_by_pid(pid) if pid is not None else {}
    busy0, wall0 = machine_busy_s(), time.monotonic()
    yield
    wall = time.monotonic() - wall0
    into["wall_s"] = wall
    into["machine_busy_cores"] = (machine_busy_s() - busy0) / wall
    if pid is not None:
        into["cpu_s"] = cpu_delta(before, cpu_by_pid(pid))
        into["server_cores"] = into["cpu_s"] / wall
        into["rss_bytes"] = rss_bytes(pid)


@contextlib.contextmanager
def footprint(target: Target, into: dict[str, Any], every_s: float = 0.5) -> Iterator[None]:
    """Sample the bytes in the server's disk cache while the block runs; record the peak."""
    folder = target.cache_dir
    if folder is None:
        yield
        return
    peak = [folder_bytes(folder)]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every_s):
            peak[0] = max(peak[0], folder_bytes(folder))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(10)
        into["disk_cache_peak_bytes"] = max(peak[0], folder_bytes(folder))


def wrk_measure(target: Target, wrk: Wrk, keyfile: Path) -> dict[str, Any]:
    """One wrk run against one server: throughput, latency, CPU per GiB, errors."""
    out: dict[str, Any] = {}
    if target.shim is not None:
        target.shim.reset()
    with metered(target, out):
        result = wrk.run(target.url, keyfile)
    if target.shim is not None:  # what the load pulled from the upstream: ~0 when all hits
        counts = target.shim.stats()
        out |= {
            "load_upstream_requests": counts["requests"],
            "load_upstream_bytes": counts["body_bytes"],
        }
    seconds = float(result["duration_us"]) / 1e6  # type: ignore[arg-type]
    latency: dict[str, float] = result["latency_us"]  # type: ignore[assignment]
    errors: dict[str, int] = result["errors"]  # type: ignore[assignment]
    total_bytes = int(result["bytes"])  # type: ignore[call-overload]
    out |= {
        "requests": result["requests"],
        "rps": int(result["requests"]) / seconds,  # type: ignore[call-overload]
        "bytes_per_s": total_bytes / seconds,
        "p50_ms": latency["p50"] / 1e3,
        "p99_ms": latency["p99"] / 1e3,
        "errors": sum(errors.values()),
        "error_kinds": {k: v for k, v in errors.items() if v},
    }
    if "cpu_s" in out and total_bytes:
        out["cpu_s_per_gib"] = out["cpu_s"] / (total_bytes / GIB)
    if "cpu_s" in out and out["requests"]:
        out["cpu_us_per_request"] = out["cpu_s"] / int(out["requests"]) * 1e6
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_ms(fetched: Sequence[Fetched], attr: str = "total_s") -> dict[str, float]:
    values = [getattr(f, attr) * 1e3 for f in fetched]
    return {"p50_ms": statistics.median(values), "p99_ms": percentile(values, 99)}


def statuses(fetched: Sequence[Fetched]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for f in fetched:
        tally[f.cache_status] = tally.get(f.cache_status, 0) + 1
    return dict(sorted(tally.items()))


def fetch(target: Target, reqs: Sequence[Req], concurrency: int, timeout_s: float) -> list[Fetched]:
    return loadgen.run(loadgen.fetch_many(target.url, reqs, concurrency), timeout_s)  # type: ignore[return-value]
