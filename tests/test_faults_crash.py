"""Crash safety: SIGKILL in the middle of a large fill and of a write-through, then a restart on
the same disk folder. Everything served afterwards is what the upstream holds, and the disk tier
is left consistent (no file its index does not know, nothing half-written served)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from typing import Any

import diskcache
import requests
from diskcache.core import EmptyDirWarning

from tests.harness import RepeatingFile

MiB = 1 << 20


def test_sigkill_mid_fill_and_mid_write_then_restart_serves_only_what_upstream_holds(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--ram-bytes", "0", "--block-size", "1MiB")
    big = os.urandom(48 * MiB)
    direct.put_object(Bucket=bucket, Key="fill", Body=big)
    direct.put_object(Bucket=bucket, Key="written", Body=b"version one")
    requests.get(f"{server.url}/{bucket}/written")  # cached before the crash

    def slow_read() -> None:
        try:
            with requests.get(f"{server.url}/{bucket}/fill", stream=True, timeout=30) as got:
                for _ in got.iter_content(MiB):
                    time.sleep(0.05)  # keep the fill in flight while the process is killed
        except requests.RequestException:
            pass  # the server is killed under this reader: a failure is what it should see

    def upload() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.put(
                f"{server.url}/{bucket}/written",
                data=RepeatingFile(os.urandom(MiB), 64),
                timeout=30,
            )

    readers = [threading.Thread(target=slow_read), threading.Thread(target=upload)]
    for thread in readers:
        thread.start()
    time.sleep(1.0)
    assert server.proc is not None
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    for thread in readers:
        thread.join(timeout=30)

    server.start()  # same folder, after an unclean stop
    for key in ("fill", "written"):
        upstream = direct.get_object(Bucket=bucket, Key=key)["Body"].read()
        for _ in range(2):  # cold or from what survived on disk, then from the cache
            got = requests.get(f"{server.url}/{bucket}/{key}", timeout=60)
            assert got.status_code == 200
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(upstream).digest(), key
    deadline = time.monotonic() + 30  # the repair after the unclean stop runs in the background
    while "unclean shutdown; repaired" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "unclean shutdown; repaired" in server.log_text()
    server.stop()
    with diskcache.Cache(str(server.disk_dir / "cache")) as cache:
        problems = [w for w in cache.check() if w.category is not EmptyDirWarning]
    # No orphaned file, no row without its file. (Empty value folders, which culling leaves
    # behind, are harmless and not counted.)
    assert [str(w.message) for w in problems] == []
