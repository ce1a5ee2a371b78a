"""One disk budget for the whole server (issue 10, item 5): with several workers sharing the disk
tier's folder, the folder never holds more than --disk-bytes, whatever the churn, and every body
served is the one written.

The folder is a tmpfs of its own, so that its usage can be read in one atomic call (statvfs):
a walk of a folder under churn can see a file that was already deleted and one created after
it, and report a total that never existed. The walk (what `du` does) is sampled beside it and
reported, not asserted on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import S3TierServer
from tests.test_faults_disk import tmpfs  # noqa: F401 - a fixture, used by name

MiB = 1 << 20
BUDGET = 8 * MiB


@dataclass
class FolderSampler:
    """Samples a tmpfs mount's used bytes (exact) and a du-style walk of it, in a thread."""

    mount: Path
    peak_used: int = 0
    peak_walk: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def used(self) -> int:
        stats = os.statvfs(self.mount)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize

    def walk(self) -> int:
        """What `du -s` would say: allocated blocks of every file and folder."""
        total = 0
        for where, folders, files in os.walk(self.mount):
            for name in folders + files:
                with contextlib.suppress(FileNotFoundError):  # removed while we walked
                    total += os.lstat(os.path.join(where, name)).st_blocks * 512
        return total

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak_used = max(self.peak_used, self.used())
            self.samples += 1
            if self.samples % 8 == 0:
                self.peak_walk = max(self.peak_walk, self.walk())

    def __enter__(self) -> FolderSampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)


def worker_pids(server: S3TierServer) -> list[int]:
    """uvicorn's worker processes: the children of the server started by multiprocessing."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def seeded(direct: Any, bucket: str) -> Iterator[dict[str, str]]:
    """64 distinct 1 MiB objects in the upstream: key -> md5 of its body."""
    rng = random.Random(5)

    def put(i: int) -> tuple[str, str]:
        body = rng.randbytes(MiB)
        direct.put_object(Bucket=bucket, Key=f"obj-{i:02d}", Body=body)
        return f"obj-{i:02d}", hashlib.md5(body).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        yield dict(pool.map(put, range(64)))


def test_two_workers_share_one_disk_budget_and_every_body_is_right(
    tmpfs: Callable[[str], Path],  # noqa: F811 - the fixture imported above
    start_s3tier: Callable[..., S3TierServer],
    seeded: dict[str, str],
    bucket: str,
) -> None:
    mount = tmpfs("64m")  # far more than the budget: only s3tier's own bound can hold it
    server = start_s3tier(
        "--workers", "2",
        "--disk-bytes", "8MiB",
        "--disk-dir", str(mount / "disk"),
        "--ram-bytes", "0",  # every read goes to the disk tier
        "--block-size", "1MiB",
    )  # fmt: skip
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    cpu_before = [cpu_seconds(pid) for pid in workers]
    reads = list(seeded) * 2
    random.Random(7).shuffle(reads)

    def read(key: str) -> tuple[str, int, str]:
        # A connection per request, so the kernel spreads them over both workers.
        got = requests.get(f"{server.url}/{bucket}/{key}", timeout=30)
        return key, got.status_code, hashlib.md5(got.content).hexdigest()

    with FolderSampler(mount) as sampler, ThreadPoolExecutor(16) as pool:
        started = time.monotonic()
        answers = list(pool.map(read, reads))
        elapsed = time.monotonic() - started
    busy = [cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before, strict=True)]
    print(
        f"\n{len(reads)} reads in {elapsed:.1f} s; folder peak {sampler.peak_used / MiB:.2f} MiB "
        f"(statvfs, {sampler.samples} samples), du walk peak {sampler.peak_walk / MiB:.2f} MiB, "
        f"budget {BUDGET / MiB:.0f} MiB; worker CPU {busy}"
    )
    wrong = [(key, status) for key, status, md5 in answers if status != 200 or md5 != seeded[key]]
    assert not wrong, wrong
    assert min(busy) > 0.2, f"one worker did not serve: CPU seconds {busy}"
    assert sampler.peak_used <= BUDGET, f"folder peaked at {sampler.peak_used} of {BUDGET}"
