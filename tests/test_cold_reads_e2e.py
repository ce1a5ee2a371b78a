"""Cold reads fetch what the client needs: upstream bytes through s3tier against the bytes the
client asked for, with real clients (pyarrow, requests), real processes and counted bytes.

Bytes the client needs are the body bytes of the answers it got, counted by a recording shim
between the client and s3tier; upstream bytes are counted by the shim between s3tier and moto.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import requests

from tests.harness import S3TierServer
from tests.upstream_shim import UpstreamShim

MiB = 1 << 20
AMPLIFICATION = 1.10  # issue 10, item 6


def s3fs(url: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=url.removeprefix("http://"), scheme="http", access_key="testing",
        secret_key="testing", region="us-east-1",
    )  # fmt: skip


def body_bytes(shim: UpstreamShim, path: str) -> int:
    return sum(r.body_bytes for r in shim.matching("GET", path))


def parquet_file() -> bytes:
    """~32 MiB in 5 row groups of 4 incompressible int64 columns: each column chunk is 1.6 MiB,
    so it straddles two or three 1 MiB blocks, with the other columns' chunks between."""
    rng = np.random.default_rng(20240607)
    rows = 1 << 20
    table = pa.table({f"c{i}": rng.integers(0, 1 << 62, rows, dtype=np.int64) for i in range(4)})
    out = io.BytesIO()
    pq.write_table(
        table, out, row_group_size=rows // 5 + 1, compression="none", use_dictionary=False
    )
    return out.getvalue()


@pytest.fixture
def proxied(start_s3tier: Any) -> Iterator[tuple[S3TierServer, UpstreamShim]]:
    """An s3tier, and a recording shim in front of it that counts what the client received."""
    server = start_s3tier()
    client_side = UpstreamShim(server.url)
    client_side.start()
    yield server, client_side
    client_side.stop()


def test_a_parquet_column_read_cold_costs_the_upstream_what_a_direct_read_costs(
    proxied: tuple[S3TierServer, UpstreamShim], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    _, client_side = proxied
    key = f"{bucket}/t/data.parquet"
    direct.put_object(Bucket=bucket, Key="t/data.parquet", Body=parquet_file())
    straight = pq.read_table(key, columns=["c1"], filesystem=s3fs(shim.url))  # through no cache
    direct_bytes = body_bytes(shim, f"/{key}")
    shim.clear()
    through = pq.read_table(key, columns=["c1"], filesystem=s3fs(client_side.url))
    time.sleep(0.5)  # anything read ahead in the background has landed by now
    upstream, client = body_bytes(shim, f"/{key}"), body_bytes(client_side, f"/{key}")
    figures = f"upstream {upstream} B via s3tier, direct read {direct_bytes} B, client {client} B"
    print(figures)
    assert through.equals(straight)
    assert upstream <= AMPLIFICATION * direct_bytes, figures
    assert upstream <= AMPLIFICATION * client, figures


def disjoint_ranges(rng: random.Random, size: int, count: int) -> list[tuple[int, int]]:
    """`count` non-overlapping ranges of mixed lengths (16 KiB to 3 MiB), in random order:
    most start or end inside a block, and many share a block with another."""
    lengths = [rng.choice([16 << 10, 64 << 10, 256 << 10, MiB, 3 * MiB // 2, 3 * MiB])
               for _ in range(count)]  # fmt: skip
    cuts = sorted(rng.randrange(0, size - sum(lengths)) for _ in lengths)
    spans, at, previous = [], 0, 0
    for length, cut in zip(lengths, cuts, strict=True):
        at += cut - previous
        previous = cut
        spans.append((at, at + length - 1))
        at += length
    rng.shuffle(spans)
    return spans


def test_random_ranges_cold_cost_the_upstream_their_own_bytes_and_hit_when_read_again(
    proxied: tuple[S3TierServer, UpstreamShim], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    _, client_side = proxied
    data = random.Random(1).randbytes(32 * MiB)
    direct.put_object(Bucket=bucket, Key="random", Body=data)
    spans = disjoint_ranges(random.Random(3), len(data), 16)
    session = requests.Session()
    url = f"{client_side.url}/{bucket}/random"
    upstream: list[int] = []
    statuses: list[set[str]] = []
    for _ in range(3):  # cold, read again (the edge blocks are cached whole), then all hits
        shim.clear()
        client_side.clear()
        seen = set()
        for start, end in spans:
            got = session.get(url, headers={"Range": f"bytes={start}-{end}"})
            assert got.content == data[start : end + 1]
            seen.add(got.headers["x-cache-status"])
        time.sleep(0.3)
        upstream.append(body_bytes(shim, f"/{bucket}/random"))
        statuses.append(seen)
    client = body_bytes(client_side, f"/{bucket}/random")
    figures = f"upstream {upstream[0]} B cold for {client} B the client asked for"
    print(figures, "; then", upstream[1:])
    assert upstream[0] <= AMPLIFICATION * client, figures
    assert upstream[2] == 0 and all(s.startswith("HIT") for s in statuses[2]), statuses
