"""Smarter tiers in a live proxy: read-ahead, the Parquet footer, the prefetch budget, and a
scan that does not flush the hot set."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import requests

from tests.upstream_shim import Recorded, UpstreamShim

MiB = 1 << 20


def gets(shim: UpstreamShim, bucket: str, key: str) -> list[Recorded]:
    return shim.matching("GET", f"/{bucket}/{key}")


def blocks_fetched(shim: UpstreamShim, bucket: str, key: str) -> set[int]:
    starts = [int(r.headers["Range"].split("=")[1].split("-")[0]) for r in gets(shim, bucket, key)]
    return {start // MiB for start in starts}


def max_concurrency(records: list[Recorded]) -> int:
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_a_slow_sequential_reader_finds_the_next_blocks_already_fetched(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier("--prefetch-bytes", "8MiB", "--readahead-max", "8")
    data = os.urandom(12 * MiB)
    direct.put_object(Bucket=bucket, Key="seq", Body=data)
    with requests.get(f"{server.url}/{bucket}/seq", stream=True, timeout=60) as got:
        chunks = got.iter_content(MiB)
        received = next(chunks) + next(chunks)  # the first two blocks, then a pause
        time.sleep(1.0)
        ahead = blocks_fetched(shim, bucket, "seq")
        received += b"".join(chunks)
    assert received == data
    # The stream itself keeps two blocks ahead; read-ahead went further while the client paused.
    assert len(ahead) >= 6, sorted(ahead)
    assert len(gets(shim, bucket, "seq")) == 12  # and still each block exactly once


def test_consecutive_ranges_are_read_ahead_and_random_ones_are_not(
    proxy_server: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="parts", Body=os.urandom(16 * MiB))
    direct.put_object(Bucket=bucket, Key="random", Body=os.urandom(16 * MiB))
    for part in range(3):  # the aws cli's ranged download, one part after another
        byte_range = f"bytes={part * MiB}-{(part + 1) * MiB - 1}"
        requests.get(f"{proxy_server.url}/{bucket}/parts", headers={"Range": byte_range})
    time.sleep(0.5)
    assert blocks_fetched(shim, bucket, "parts") > {0, 1, 2}
    rng = random.Random(7)
    order = [0, 9, 3, 14, 6, 11, 1, 8, 4, 13]  # no read starts where the previous one ended
    touched = set()
    for block in order:
        start = block * MiB + rng.randrange(0, MiB - 65536)
        touched.add(block)
        headers = {"Range": f"bytes={start}-{start + 65535}"}
        requests.get(f"{proxy_server.url}/{bucket}/random", headers=headers)
    time.sleep(0.5)
    assert blocks_fetched(shim, bucket, "random") == touched


def test_the_first_touch_of_a_parquet_file_also_fetches_its_footer_block(
    proxy_server: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="t/data.parquet", Body=os.urandom(10 * MiB + 100_000))
    requests.get(f"{proxy_server.url}/{bucket}/t/data.parquet", headers={"Range": "bytes=0-99"})
    time.sleep(0.5)
    # The 100 bytes asked for, and the footer's block: only that one, never the one before it,
    # which holds the last column chunks a reader of some columns may never want.
    ranges = sorted(r.headers["Range"] for r in gets(shim, bucket, "t/data.parquet"))
    assert ranges == ["bytes=0-99", f"bytes={10 * MiB}-{11 * MiB - 1}"]
    footer = requests.get(
        f"{proxy_server.url}/{bucket}/t/data.parquet", headers={"Range": "bytes=-65536"}
    )  # what pyarrow reads first
    assert footer.headers["x-cache-status"].startswith("HIT")


def test_prefetch_never_has_more_in_flight_than_its_budget(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier("--prefetch-bytes", "2MiB", "--readahead-max", "16")
    data = os.urandom(24 * MiB)
    direct.put_object(Bucket=bucket, Key="budget", Body=data)
    assert requests.get(f"{server.url}/{bucket}/budget", timeout=60).content == data
    # Two blocks the stream holds, plus 2 MiB of prefetch: never more than four at once.
    assert max_concurrency(gets(shim, bucket, "budget")) <= 4


def test_a_scan_does_not_evict_the_hot_set_from_ram(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--ram-bytes", "8MiB", "--ram-max-object", "1MiB", "--disk-bytes", "0")
    body = os.urandom(128 << 10)
    hot = [f"hot/{i}" for i in range(16)]  # 2 MiB, a quarter of RAM
    scan = [f"scan/{i}" for i in range(160)]  # 20 MiB, read once each
    for key in hot + scan:
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    session = requests.Session()
    for _ in range(4):
        for key in hot:
            session.get(f"{server.url}/{bucket}/{key}")
    for key in scan:
        session.get(f"{server.url}/{bucket}/{key}")
    statuses = [
        session.get(f"{server.url}/{bucket}/{key}").headers["x-cache-status"] for key in hot
    ]
    assert statuses == ["HIT-RAM"] * len(hot)
