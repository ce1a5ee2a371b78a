"""Warm-up: the CLI and the admin surface pull a prefix into a running proxy's cache."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import requests

from tests.harness import VENV_BIN
from tests.upstream_shim import UpstreamShim

MiB = 1 << 20


def seed(direct: Any, bucket: str, prefix: str, count: int) -> dict[str, bytes]:
    bodies = {f"{prefix}{i}": os.urandom(MiB + i * 1000) for i in range(count)}
    for key, body in bodies.items():
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    return bodies


def test_the_warm_command_fills_the_cache_and_reports_progress(
    proxy_server: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    bodies = seed(direct, bucket, "w/", 5)
    done = subprocess.run(
        [str(VENV_BIN / "s3tier"), "warm", f"s3://{bucket}/w/", "--tier", "ram",
         "--endpoint", proxy_server.url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5/5 objects" in done.stderr
    assert "warm-up " in done.stderr and " done: 5 objects" in done.stderr
    shim.clear()
    for key, body in bodies.items():
        got = requests.get(f"{proxy_server.url}/{bucket}/{key}")
        assert (got.content, got.headers["x-cache-status"]) == (body, "HIT-RAM")
    assert shim.matching("GET", f"/{bucket}/w/") == []


def test_an_admin_warm_job_into_disk_makes_later_reads_disk_hits(
    proxy_server: Any, direct: Any, bucket: str
) -> None:
    bodies = seed(direct, bucket, "d/", 3)
    started = requests.post(
        f"{proxy_server.url}/_s3tier/warm",
        json={"bucket": bucket, "keys": list(bodies), "tier": "disk"},
    )
    assert started.status_code == 202
    job = started.json()
    for _ in range(200):
        job = requests.get(f"{proxy_server.url}/_s3tier/warm/{job['id']}").json()
        if job["state"] not in ("listing", "warming"):
            break
        time.sleep(0.05)
    assert (job["state"], job["objects_done"], job["errors"]) == ("done", 3, 0)
    assert job["bytes_done"] == sum(len(b) for b in bodies.values())
    for key, body in bodies.items():
        got = requests.get(f"{proxy_server.url}/{bucket}/{key}", headers={"Range": "bytes=-10"})
        assert got.content == body[-10:]
        assert got.headers["x-cache-status"] in ("HIT-DISK", "HIT-RAM")
    listed = requests.get(f"{proxy_server.url}/_s3tier/warm").json()
    assert job["id"] in [j["id"] for j in listed]
    assert requests.get(f"{proxy_server.url}/_s3tier/warm/nope").status_code == 404


def test_the_admin_surface_needs_a_token_under_sigv4(start_s3tier: Any) -> None:
    guarded = start_s3tier("--auth", "sigv4", "--admin-token", "s3cr3t-token")
    url = f"{guarded.url}/_s3tier/warm"
    assert requests.get(f"{guarded.url}/_s3tier/healthz").status_code == 200
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer s3cr3t-token"}).status_code == 200
    closed = start_s3tier("--auth", "sigv4")
    assert requests.get(f"{closed.url}/_s3tier/warm").status_code == 403
    assert requests.get(f"{closed.url}/_s3tier/healthz").status_code == 200
