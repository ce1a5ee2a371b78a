"""The server as a whole: start-up, configuration sources, several workers, shutdown."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from pathlib import Path
from typing import Any

import requests

from tests.harness import VENV_BIN


def test_bad_setting_stops_startup_with_a_message_naming_it() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "s3tier"), "serve", "--block-size", "1KB"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--block-size / S3TIER_BLOCK_SIZE" in done.stderr


def test_yaml_freshness_rules_apply_per_prefix(
    start_s3tier: Any, direct: Any, bucket: str, tmp_path: Path
) -> None:
    config = tmp_path / "s3tier.yaml"
    config.write_text(
        "freshness:\n"
        "  default: strict\n"
        f"  rules:\n    - {{bucket: {bucket}, prefix: 'blobs/', mode: immutable}}\n"
    )
    server = start_s3tier("--config", str(config))
    for key in ("blobs/a", "other/a"):
        direct.put_object(Bucket=bucket, Key=key, Body=b"v1")
        requests.get(f"{server.url}/{bucket}/{key}")
    immutable = requests.get(f"{server.url}/{bucket}/blobs/a")
    strict = requests.get(f"{server.url}/{bucket}/other/a")
    assert immutable.headers["x-cache-status"] == "HIT-RAM"
    assert strict.headers["x-cache-status"] == "REVALIDATED"


def test_several_workers_serve_and_share_the_disk_tier(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--workers", "2", "--freshness", "immutable")
    direct.put_object(Bucket=bucket, Key="w", Body=b"worker" * 1000)
    statuses = set()
    for _ in range(20):
        got = requests.get(f"{server.url}/{bucket}/w", headers={"Connection": "close"})
        assert got.content == b"worker" * 1000
        statuses.add(got.headers["x-cache-status"])
    assert "MISS" in statuses
    assert statuses <= {"MISS", "HIT-RAM", "HIT-DISK"}


def test_sigterm_stops_the_server_cleanly(start_s3tier: Any) -> None:
    server = start_s3tier()
    server.stop()
    assert server.proc is not None
    # uvicorn re-raises the signal once its shutdown is done, so the status reports SIGTERM.
    assert server.proc.returncode in (0, -15)
    assert "Application shutdown complete" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_a_write_through_one_worker_is_seen_by_every_worker_even_under_immutable(
    start_s3tier: Any, bucket: str
) -> None:
    server = start_s3tier("--workers", "2", "--freshness", "immutable")
    url = f"{server.url}/{bucket}/shared"
    for version in range(4):
        body = f"version {version}".encode()
        put = requests.put(url, data=body, headers={"Connection": "close"})
        assert put.status_code == 200
        # New connections land on either worker; each may hold the previous version in RAM.
        seen = {requests.get(url, headers={"Connection": "close"}).content for _ in range(12)}
        assert seen == {body}, (version, seen)


def test_many_readers_of_one_cold_object_on_several_workers_fetch_each_block_once(
    start_s3tier: Any, direct: Any, bucket: str, shim: Any
) -> None:
    server = start_s3tier("--workers", "2", "--block-size", "1MiB")
    body = os.urandom(6 * 1024 * 1024 + 123)
    direct.put_object(Bucket=bucket, Key="herd", Body=body)
    shim.clear()

    def read(_: int) -> bytes:
        # A new connection each: the kernel spreads them over both workers.
        return requests.get(f"{server.url}/{bucket}/herd", headers={"Connection": "close"}).content

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        assert all(got == body for got in pool.map(read, range(24)))
    fetched = shim.matching("GET", contains=f"/{bucket}/herd")
    assert sum(r.body_bytes for r in fetched) == len(body)  # every byte once, across workers
