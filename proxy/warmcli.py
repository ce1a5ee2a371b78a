"""`s3tier warm`: start a warm-up job in a running proxy and show its progress until it ends."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import IO, Any

BAR_WIDTH = 24


def parse_target(target: str) -> tuple[str, str]:
    """('bucket', 'prefix') from s3://bucket/prefix; raises ValueError otherwise."""
    if not target.startswith("s3://") or len(target) <= 5:
        raise ValueError(f"{target!r} is not s3://bucket/prefix")
    bucket, _, prefix = target[5:].partition("/")
    if not bucket:
        raise ValueError(f"{target!r} names no bucket")
    return bucket, prefix


def warm(
    endpoint: str,
    target: str,
    tier: str,
    concurrency: int,
    token: str | None,
    out: IO[str] = sys.stderr,
    poll_s: float = 0.5,
) -> int:
    """Run one warm-up to its end; returns 0 when every object was warmed, 1 otherwise."""
    bucket, prefix = parse_target(target)
    base = endpoint.rstrip("/") + "/_s3tier/warm"
    job = admin_call("POST", base, token, {"bucket": bucket, "prefix": prefix, "tier": tier,
                                      "concurrency": concurrency})  # fmt: skip
    url = f"{base}/{job['id']}"
    try:
        while job["state"] in ("listing", "warming"):
            out.write("\r" + progress_line(job))
            out.flush()
            time.sleep(poll_s)
            job = admin_call("GET", url, token)
    except KeyboardInterrupt:
        job = admin_call("DELETE", url, token)
    out.write("\r" + progress_line(job) + "\n")
    out.write(summary(job) + "\n")
    return 0 if job["state"] == "done" and not job["errors"] else 1


def progress_line(job: dict[str, Any]) -> str:
    total, done = int(job["bytes_total"]), int(job["bytes_done"])
    filled = BAR_WIDTH * done // total if total else (BAR_WIDTH if job["state"] == "done" else 0)
    eta = job.get("eta_s")
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        f"{job['objects_done']}/{job['objects_total']} objects  "
        f"{_size(done)}/{_size(total)}  {_size(int(job['rate_bytes_per_s']))}/s  "
        f"ETA {'-' if eta is None else f'{eta:.0f}s'}  "
    )


def summary(job: dict[str, Any]) -> str:
    return (
        f"warm-up {job['id']} {job['state']}: {job['objects_done']} objects, "
        f"{_size(int(job['bytes_done']))} into {job['tier']} in {job['elapsed_s']:.1f}s, "
        f"{job['errors']} errors" + (f" (last: {job['last_error']})" if job["errors"] else "")
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def admin_call(method: str, url: str, token: str | None, body: object = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: {exc.code} {exc.read().decode()[:200]}") from exc
