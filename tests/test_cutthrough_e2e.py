"""Cut-through end to end (tiering/arrival.py): a cold miss's first block goes to the client
as it arrives from the upstream; a break is resumed from its offset pinned by If-Match, or the
body ends short; nothing partial is ever cached. Real moto, real s3tier, the recording shim."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests

from tests.harness import S3TierServer
from tests.upstream_shim import Recorded, UpstreamShim

MiB = 1 << 20


def gets_of(bucket: str, key: str, range_from: int | None = None) -> Any:
    def matches(r: Recorded) -> bool:
        if r.method != "GET" or r.path.partition("?")[0] != f"/{bucket}/{key}":
            return False
        return range_from is None or r.headers.get("Range", "").startswith(f"bytes={range_from}-")

    return matches


def resumes_of(bucket: str, key: str, broken_after: int) -> Any:
    """GETs of the rest of block 0 after a break: from what arrived, at most `broken_after`
    (aiohttp reports the break before handing over what it had buffered of the last read)."""

    def matches(r: Recorded) -> bool:
        start = r.headers.get("Range", "").removeprefix("bytes=").partition("-")[0]
        return gets_of(bucket, key)(r) and start.isdigit() and 0 < int(start) <= broken_after

    return matches


def dripping(
    direct: Any, shim: UpstreamShim, bucket: str, key: str, size: int, every_s: float
) -> bytes:
    """An object whose next GET the upstream answers 100 kB at a time, `every_s` apart."""
    data = os.urandom(size)
    direct.put_object(Bucket=bucket, Key=key, Body=data)
    shim.drip_next(gets_of(bucket, key), piece_bytes=100_000, every_s=every_s)
    return data


def test_the_first_bytes_of_a_cold_miss_leave_before_its_block_has_arrived(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    # The upstream sends 100 kB, then 100 kB more every 1.5 s: the block is whole after 4.5 s.
    data = dripping(direct, shim, bucket, "drip", 400_000, every_s=1.5)
    started = time.monotonic()
    with requests.get(f"{proxy_server.url}/{bucket}/drip", stream=True, timeout=30) as got:
        assert (got.status_code, got.headers["x-cache-status"]) == (200, "MISS")
        first = got.raw.read(1000)
        first_byte_s = time.monotonic() - started
        body = first + got.raw.read()
    whole_s = time.monotonic() - started
    assert body == data
    assert first_byte_s < 1.2, f"the first byte waited {first_byte_s:.1f}s for the block"
    assert whole_s >= 4.0  # it really was dripped
    again = requests.get(f"{proxy_server.url}/{bucket}/drip")
    assert (again.content, again.headers["x-cache-status"]) == (data, "HIT-RAM")
    assert len(shim.matching("GET", f"/{bucket}/drip")) == 1


def test_readers_that_join_a_cold_miss_follow_the_same_arrival(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = dripping(direct, shim, bucket, "joined", 300_000, every_s=1.0)
    url = f"{proxy_server.url}/{bucket}/joined"
    with requests.get(url, stream=True, timeout=30) as first:
        head = first.raw.read(1000)
        with requests.get(url, stream=True, timeout=30) as second:  # joins mid-arrival
            assert second.raw.read() == data
        assert head + first.raw.read() == data
    assert len(shim.matching("GET", f"/{bucket}/joined")) == 1


def test_a_break_mid_block_is_resumed_from_its_offset_pinned_to_the_version(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(2 * MiB + 5)
    direct.put_object(Bucket=bucket, Key="resume", Body=data)
    shim.break_next(gets_of(bucket, "resume", 0), after_bytes=300_000)
    got = requests.get(f"{proxy_server.url}/{bucket}/resume", timeout=30)
    assert (got.status_code, got.content) == (200, data)
    resumed = [
        r
        for r in shim.matching("GET", f"/{bucket}/resume")
        if resumes_of(bucket, "resume", 300_000)(r)
    ]
    assert len(resumed) == 1
    assert resumed[0].headers["Range"].endswith(f"-{MiB - 1}")
    assert resumed[0].headers["If-Match"] == got.headers["ETag"]
    again = requests.get(f"{proxy_server.url}/{bucket}/resume")
    assert again.content == data
    assert again.headers["x-cache-status"].startswith("HIT")


@pytest.mark.parametrize("size", [400_000, 2 * MiB])
def test_an_object_replaced_before_the_resume_ends_the_body_short_and_caches_nothing(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim, size: int
) -> None:
    old, new = os.urandom(size), os.urandom(size)
    key = f"replaced-{size}"
    direct.put_object(Bucket=bucket, Key=key, Body=old)
    shim.break_next(gets_of(bucket, key, 0), after_bytes=200_000)
    shim.before_next(
        resumes_of(bucket, key, 200_000),
        lambda: direct.put_object(Bucket=bucket, Key=key, Body=new),
    )
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.get(f"{proxy_server.url}/{bucket}/{key}", stream=True, timeout=30) as got,
    ):
        got.content  # noqa: B018 - reading is the test: the old version's bytes, cut short
    shim.clear_faults()
    again = requests.get(f"{proxy_server.url}/{bucket}/{key}")
    assert (again.status_code, again.content) == (200, new)
    assert again.headers["x-cache-status"] == "MISS"
