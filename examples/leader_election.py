"""Leader election over S3 conditional writes, through s3tier.

Several worker processes race to create a lock object with `If-None-Match: *`; S3 lets exactly
one succeed. The leader renews its lease by rewriting the lock with `If-Match: <the ETag it
holds>` (compare-and-swap). A follower that reads an expired lease takes over the same way,
with `If-Match` on the ETag it read, so of several followers racing for an expired lease only
one wins. The first leader "crashes" (stops renewing) part-way through, to show a takeover.

Run it with one command; with no --endpoint it starts its own s3tier (embedded upstream):

    .venv/bin/python examples/leader_election.py

It prints one line per event and a summary, and exits non-zero if two workers ever held the
lease at the same time or no takeover happened.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}


def client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="example",
        aws_secret_access_key="example",
        config=Config(retries={"max_attempts": 1}),
    )


def lease_body(worker: int, lease_s: float) -> tuple[bytes, float]:
    """The lock's content, and the moment the lease it grants ends (what followers will read)."""
    expires_at = time.time() + lease_s
    return json.dumps({"holder": worker, "expires_at": expires_at}).encode(), expires_at


def try_write(s3: Any, bucket: str, key: str, body: bytes, **condition: str) -> str | None:
    """The new ETag if the conditional write won, None if another writer got there first."""
    try:
        return str(s3.put_object(Bucket=bucket, Key=key, Body=body, **condition)["ETag"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in CONFLICT:
            return None
        raise


def worker(args: argparse.Namespace, index: int, events: Any, crashed: Any) -> None:
    s3 = client(args.endpoint)
    deadline = time.time() + args.duration_s
    etag: str | None = None
    crash_at = 0.0
    while time.time() < deadline:
        if etag is not None:
            if time.time() >= crash_at and not crashed.is_set():
                crashed.set()  # the first leader to reach its crash time stops renewing
                events.put((time.time(), index, "crash", None))
                return
            body, expires_at = lease_body(index, args.lease_s)
            renewed = try_write(s3, args.bucket, args.key, body, IfMatch=etag)
            if renewed is None:
                events.put((time.time(), index, "lost", None))
            else:
                events.put((time.time(), index, "renew", expires_at))
            etag = renewed
            time.sleep(args.lease_s / 3)
            continue
        won = acquire(s3, args, index)
        if won is not None:
            etag, expires_at = won
            crash_at = time.time() + args.crash_after_s
            events.put((time.time(), index, "lead", expires_at))
        else:
            time.sleep(args.lease_s / 5)


def acquire(s3: Any, args: argparse.Namespace, index: int) -> tuple[str, float] | None:
    """(ETag, lease end) if this worker became the leader."""
    try:
        current = s3.get_object(Bucket=args.bucket, Key=args.key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchKey":
            raise
        body, expires_at = lease_body(index, args.lease_s)
        etag = try_write(s3, args.bucket, args.key, body, IfNoneMatch="*")
        return None if etag is None else (etag, expires_at)
    lease = json.loads(current["Body"].read())
    if lease["expires_at"] > time.time():
        return None
    body, expires_at = lease_body(index, args.lease_s)
    etag = try_write(s3, args.bucket, args.key, body, IfMatch=current["ETag"])
    return None if etag is None else (etag, expires_at)


def check(events: list[tuple[float, int, str, float | None]]) -> list[str]:
    """Problems: overlapping leases, or no takeover after the first leader crashed."""
    problems = []
    holder: tuple[int, float] | None = None  # (worker, lease end)
    leaders = []
    for at, who, what, until in sorted(events):
        if what == "lead":
            if holder is not None and holder[0] != who and holder[1] > at:
                problems.append(f"worker {who} led at {at:.2f} while {holder[0]} held the lease")
            leaders.append(who)
        if what in ("lead", "renew"):
            assert until is not None
            holder = (who, until)
    if len(set(leaders)) < 2:
        problems.append("no takeover happened after the first leader crashed")
    return problems


@contextmanager
def own_s3tier() -> Any:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3tier = Path(sys.executable).parent / "s3tier"
    disk = Path(os.environ.get("TMPDIR", "/tmp")) / f"s3tier-leader-example-{port}"
    proc = subprocess.Popen(
        [str(s3tier), "serve", "--port", str(port), "--disk-dir", str(disk)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/_s3tier/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(args: argparse.Namespace) -> int:
    s3 = client(args.endpoint)
    try:
        s3.create_bucket(Bucket=args.bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.delete_object(Bucket=args.bucket, Key=args.key)
    events: Any = multiprocessing.Queue()
    crashed = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=worker, args=(args, i, events, crashed))
        for i in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(args.duration_s + 30)
    seen = []
    while not events.empty():
        seen.append(events.get())
    start = min(at for at, *_ in seen) if seen else 0.0
    for at, who, what, _ in sorted(seen):
        if what != "renew" or args.verbose:
            print(f"{at - start:7.2f}s worker {who} {what}")
    problems = check(seen)
    leaders = [who for _, who, what, _ in sorted(seen) if what == "lead"]
    print(f"leaders in turn: {leaders}; renewals: {sum(1 for e in seen if e[2] == 'renew')}")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="s3tier URL; default: start one with an embedded S3")
    parser.add_argument("--bucket", default="leader-election")
    parser.add_argument("--key", default="leader.lock")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--lease-s", type=float, default=1.5)
    parser.add_argument("--crash-after-s", type=float, default=2.0)
    parser.add_argument("--duration-s", type=float, default=7.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.endpoint:
        return run(args)
    with own_s3tier() as url:
        args.endpoint = url
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
