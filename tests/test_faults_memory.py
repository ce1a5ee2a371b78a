"""Memory (issue 7, §2.8): two GETs and two PUTs of a large object at once keep the s3tier
process's resident memory within a bound that does not depend on the object's size: a few
blocks per stream, plus the configured RAM tier.

The upstream is the scripted stub serving a synthetic object (a pattern, generated per range)
and checking uploaded bytes against the same pattern as they stream in, so only s3tier holds
anything: moto would read the whole object for every ranged GET and keep uploads in memory.
Objects of 256 MiB and of 1 GiB (the issue's case, 12 s here with 16 MiB blocks) are held to
the same bound, which is what "independent of size" means; the bound is counted in blocks, so
both 1 MiB blocks (the default) and 16 MiB blocks are tried. The 1 GiB case with 1 MiB blocks
(about 25 s) runs with S3TIER_SLOW_TESTS=1.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.fuzz_wire import RssSampler
from tests.harness import S3TierServer
from tests.upstream_shim import PatternFile, ScriptedUpstream, pattern_bytes

MiB = 1 << 20
GiB = 1 << 30
RAM_BYTES = 32 * MiB  # which these objects never enter (--ram-max-object is 16 MiB)
PREFETCH_BYTES = 64 * MiB
GET_STREAMS = 2
BLOCKS_PER_STREAM = 4  # the block being sent, two loading ahead, one being stored
# Allocator and interpreter overhead, aiohttp and uvicorn buffers, and what glibc keeps of
# freed large buffers: its mmap threshold adapts upwards (to 32 MiB), so freed 16 MiB blocks
# stay in the heap for reuse and RSS lags behind what is in use, more so when the machine is
# busy and blocks wait longer. Measured: 252-314 MiB growth with 16 MiB blocks, 256 MiB and
# 1 GiB objects alike, which is the point: the bound does not grow with the object.
SLACK = 128 * MiB


def bound(block_size: int) -> int:
    """What the issue allows: a few blocks per stream, plus the RAM tier (and, since read-ahead
    may hold that much, the prefetch budget). PUT streams hold no blocks: they are relayed
    piece by piece when larger than --put-cache-max. Nothing here depends on the object size."""
    return GET_STREAMS * BLOCKS_PER_STREAM * block_size + RAM_BYTES + PREFETCH_BYTES + SLACK


@pytest.fixture
def stub() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def download_and_check(url: str, size: int) -> int:
    """Stream a synthetic object, comparing every byte with the pattern; returns bytes read."""
    offset = 0
    with requests.get(url, stream=True, timeout=300) as got:
        assert got.status_code == 200, got.text[:300]
        for piece in got.iter_content(MiB):
            assert piece == pattern_bytes(offset, len(piece)), f"wrong bytes at {offset}"
            offset += len(piece)
    assert offset == size
    return offset


def upload(url: str, size: int) -> int:
    got = requests.put(url, data=PatternFile(size), timeout=300)
    assert got.status_code == 200, got.text[:300]
    return size


CASES = [
    pytest.param(256 * MiB, MiB, id="256MiB-1MiB-blocks"),
    pytest.param(256 * MiB, 16 * MiB, id="256MiB-16MiB-blocks"),
    pytest.param(GiB, 16 * MiB, id="1GiB-16MiB-blocks"),
    # 2048 block requests, about 25 s here: left to S3TIER_SLOW_TESTS=1 to keep `make test` short.
    pytest.param(
        GiB,
        MiB,
        id="1GiB-1MiB-blocks",
        marks=pytest.mark.skipif(
            os.environ.get("S3TIER_SLOW_TESTS") != "1", reason="slow: set S3TIER_SLOW_TESTS=1"
        ),
    ),
]


@pytest.mark.parametrize(("size", "block_size"), CASES)
def test_two_gets_and_two_puts_of_a_large_object_keep_rss_within_a_size_independent_bound(
    start_s3tier: Callable[..., S3TierServer],
    stub: ScriptedUpstream,
    size: int,
    block_size: int,
) -> None:
    server = start_s3tier(
        *("--block-size", str(block_size), "--ram-bytes", str(RAM_BYTES)),
        *("--prefetch-bytes", str(PREFETCH_BYTES), "--disk-bytes", "256MiB"),
        upstream=stub.url,
    )
    for name in ("big-a", "big-b"):
        stub.add_object("bkt", name, size)
    jobs: list[tuple[Callable[[str, int], int], str]] = [
        (download_and_check, f"{server.url}/bkt/big-a"),
        (download_and_check, f"{server.url}/bkt/big-b"),
        (upload, f"{server.url}/bkt/up-a"),
        (upload, f"{server.url}/bkt/up-b"),
    ]
    with RssSampler(server.pid) as rss, concurrent.futures.ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda job: job[0](job[1], size), jobs))
    assert done == [size] * 4
    for name in ("/bkt/up-a", "/bkt/up-b"):
        stored = stub.puts[name]
        assert (stored.complete, stored.size, stored.pattern_intact) == (True, size, True)
    assert rss.growth < bound(block_size), (
        f"RSS grew {rss.growth / MiB:.0f} MiB moving {4 * size / MiB:.0f} MiB "
        f"(baseline {rss.baseline / MiB:.0f} MiB, bound {bound(block_size) / MiB:.0f} MiB)"
    )
