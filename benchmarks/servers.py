"""The processes a benchmark run starts, and what it reads about them from /proc.

moto is the upstream; each server under test reaches it through a shim of its own
(`benchmarks/shim.py`), which counts the bytes that server pulled and can add latency. s3tier
and the nginx peer are started per workload with that workload's budgets. Everything started
here is stopped by PID, its descendants too, whatever happened before.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness: the process handling the e2e tests use

from tests.harness import (  # noqa: E402
    CREDENTIALS,
    MotoServer,
    Process,
    S3TierServer,
    free_port,
)

# The peer lives beside the repository, in the shared folder, and is rendered at run time
# (BENCH_PEER_CONFIG points elsewhere, for tests).
PEER_CONFIG = Path(
    os.environ.get("BENCH_PEER_CONFIG")
    or ROOT.parent / "shared" / "peers" / "nginx-proxy-cache.conf"
)
PLACEHOLDER = re.compile(r"@[A-Z]+@")

__all__ = ["CREDENTIALS", "PEER_CONFIG", "MotoServer", "Nginx", "S3Tier", "Shim", "find_tool"]


def find_tool(name: str) -> str | None:
    """`nginx` lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def peer_template(path: Path = PEER_CONFIG) -> str:
    if not path.is_file():
        raise SystemExit(
            f"bench: the nginx peer configuration is missing: expected {path} "
            "(../shared/peers/nginx-proxy-cache.conf beside the repository)"
        )
    return path.read_text(encoding="utf-8")


def render_peer(
    template: str, prefix: Path, listen: str, upstream: str, max_size: str | None = None
) -> str:
    """Substitute the three placeholders; with `max_size`, also every cache's `max_size=`
    (W7's budget). Nothing else in the peer changes."""
    text = template.replace("@PREFIX@", str(prefix))
    text = text.replace("@LISTEN@", listen).replace("@UPSTREAM@", upstream)
    if max_size is not None:
        text, count = re.subn(r"max_size=\S+", f"max_size={max_size}", text)
        if count == 0:
            raise SystemExit("bench: the peer configuration has no max_size= to set")
    left = PLACEHOLDER.findall(text)
    if left:
        raise SystemExit(f"bench: placeholders left in the peer configuration: {sorted(set(left))}")
    return text


def _get_json(url: str, method: str = "GET") -> dict[str, int]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.load(answer))


class Shim(Process):
    """A counting (and, on request, delaying) HTTP proxy in front of the upstream."""

    def __init__(self, workdir: Path, name: str, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hostport = f"127.0.0.1:{self.port}"
        argv = [sys.executable, str(Path(__file__).with_name("shim.py"))]
        argv += ["--target", target, "--port", str(self.port)]
        super().__init__(argv, workdir / f"shim-{name}.log", dict(os.environ))

    def start(self, ready_url: str | None = None) -> None:
        super().start(ready_url or self.url + "/_shim/stats")

    def stats(self, path: str | None = None) -> dict[str, int]:
        query = "" if path is None else "?" + urllib.parse.urlencode({"path": path})
        return _get_json(f"{self.url}/_shim/stats{query}")

    def log(self) -> list[list[object]]:
        request = urllib.request.Request(f"{self.url}/_shim/log")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return list(json.load(answer))

    def reset(self) -> None:
        _get_json(f"{self.url}/_shim/reset", "POST")

    def set_delay(self, delay_ms: float) -> None:
        _get_json(f"{self.url}/_shim/config?delay_ms={delay_ms}", "POST")


class Nginx(Process):
    """The peer, rendered from ../shared/peers into its own prefix, in the foreground."""

    def __init__(
        self, workdir: Path, nginx: str, upstream: str, max_size: str | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix = workdir / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        self.cache_dir = prefix / "cache"  # the whole-object cache (`keys_zone=s3`)
        # Workers run as `nobody` when nginx starts as root: they must reach the cache folders
        # (the caller makes the folders above `workdir` traversable).
        for folder in (workdir, prefix):
            folder.chmod(0o755)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(
            render_peer(peer_template(), prefix, f"127.0.0.1:{self.port}", upstream, max_size)
        )
        # `daemon off` keeps the master as our child, so it is stopped by the PID we hold;
        # -e keeps nginx's start-up log out of /var/log.
        argv = [nginx, "-c", str(self.conf), "-p", str(prefix), "-e", str(prefix / "error.log")]
        argv += ["-g", "daemon off;"]
        super().__init__(argv, workdir / "nginx.log", dict(os.environ))

    def start(self, ready_url: str | None = None) -> None:
        super().start(ready_url or self.url + "/_bench/ready")


class S3Tier(S3TierServer):
    """`s3tier serve` as the benchmark runs it: no client auth, the peer's 1 h freshness."""

    def __init__(self, workdir: Path, upstream: str, workers: int, *flags: str) -> None:
        common = ["--auth", "none", "--workers", str(workers), "--freshness", "ttl:3600"]
        common += ["--log-level", "warning", "--shutdown-grace", "2"]
        super().__init__(workdir, upstream, *common, *flags)


# -- /proc readings -----------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (nginx: master, workers, cache manager and loader;
    s3tier: the supervisor and its workers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_by_pid(pid: int) -> dict[int, float]:
    """utime + stime of each process in the tree, in seconds."""
    out: dict[int, float] = {}
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            out[process.pid] = times.user + times.system
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings; a process born in between counts from zero."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def folder_bytes(folder: Path) -> int:
    """Bytes in the files below a folder (a cache's footprint on disk), leaving out s3tier's
    metrics files, which live there with several workers."""
    total = 0
    for parent, folders, files in os.walk(folder):
        if "metrics" in folders:
            folders.remove("metrics")
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory summed over the tree (pages shared between processes count once each)."""
    total = 0
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


@contextlib.contextmanager
def running(process: Process) -> Iterator[Process]:
    """Start a process and stop it, with every descendant, by PID when the block ends."""
    try:
        try:
            process.start()
        except Exception as exc:
            tail = process.log_text()[-800:] if process.log_path.exists() else ""
            raise RuntimeError(f"{exc}; its log ends: {tail}") from exc
        yield process
    finally:
        stop_tree(process)


def stop_tree(process: Process) -> None:
    """Stop the process by PID, then any descendant it left behind, by PID too (a process
    with the same PID but another start time is someone else's and is left alone)."""
    if process.proc is None:
        return
    family = []
    for child in tree(process.proc.pid)[1:]:
        with contextlib.suppress(psutil.NoSuchProcess):
            family.append((child.pid, child.create_time()))
    with contextlib.suppress(Exception):
        process.stop()
    for pid, created in family:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            if psutil.Process(pid).create_time() == created:
                os.kill(pid, signal.SIGKILL)
