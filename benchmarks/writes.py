"""Write workloads: PUTs through s3tier against the same PUTs straight to the upstream.

The peer of a write is not nginx (which caches no writes) but the upstream itself, reached
through its own shim, so both paths pay the same shim hop: client -> shim -> moto directly,
client -> s3tier -> shim -> moto through the proxy. They are measured in turn, the order
flipped every repetition.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from rig import Rig, Target, in_turn, metered
from seed import BUCKET

KIB, MIB = 1 << 10, 1 << 20


def client(url: str, pool: int) -> Any:
    """A boto3 client as an application makes one: defaults, but path addressing for
    127.0.0.1 and a connection pool as large as its threads."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool),
    )


def put_load(url: str, prefix: str, writers: int, size: int, seconds: float) -> dict[str, Any]:
    """`writers` threads, each PUTting `size`-byte objects one after another for `seconds`,
    all through one boto3 client (thread-safe, as applications share it)."""
    s3 = client(url, writers)
    body = b"w" * size
    stop = time.monotonic() + seconds
    done: list[int] = [0] * writers
    failed: list[int] = [0] * writers
    latencies: list[list[float]] = [[] for _ in range(writers)]

    def write(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{n:02d}-{i:06d}", Body=body)
                done[n] += 1
            except Exception:  # counted, never fatal: an error rate is a result too
                failed[n] += 1
            latencies[n].append(time.perf_counter() - started)
            i += 1

    s3.head_bucket(Bucket=BUCKET)  # connect and sign once before the clock starts
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    every = sorted(x for per in latencies for x in per)
    return {
        "puts": sum(done),
        "errors": sum(failed),
        "puts_per_s": sum(done) / wall,
        "p50_ms": 1e3 * every[len(every) // 2] if every else 0.0,
        "p99_ms": 1e3 * every[min(len(every) - 1, int(len(every) * 0.99))] if every else 0.0,
    }


Measure = Callable[[Target, int], dict[str, Any]]


def against_direct(
    rig: Rig, plan: Any, wid: str, measure: Measure, line: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    """`measure(target, repetition)` through a fresh s3tier and straight to the upstream, in
    turn, each measurement metered; the records by target name."""
    runs: dict[str, list[dict[str, Any]]] = {}
    with rig.servers(wid, []) as targets:
        s3tier = next(t for t in targets if t.name == "s3tier")
        everyone: list[Target] = [s3tier, rig.direct()]
        for rep in range(plan.repeats):
            for t in in_turn(everyone, rep):
                record: dict[str, Any] = {}
                with metered(t, record):
                    record |= measure(t, rep)
                runs.setdefault(t.name, []).append(record)
                rig.log(f"  rep {rep + 1} {t.name:8s} {line(record)}")
    return runs


def w8(rig: Rig, plan: Any) -> dict[str, Any]:
    """Small PUTs: 16 boto3 writers of 4 KiB objects, through s3tier and direct."""
    writers, size = 16, 4 * KIB
    seconds = max(plan.duration_s, 1.0)
    runs = against_direct(
        rig, plan, "W8",
        lambda t, rep: put_load(t.url, f"w8/{t.name}/r{rep}", writers, size, seconds),
        lambda r: f"{r['puts_per_s']:7,.0f} PUTs/s p50 {r['p50_ms']:.1f} ms "
        f"p99 {r['p99_ms']:.1f} ms errors {r['errors']}",
    )  # fmt: skip
    params = {"writers": writers, "object_bytes": size, "seconds": seconds, "peer": "direct"}
    title = f"{writers} boto3 writers of {size // KIB} KiB objects (peer: the upstream direct)"
    return {"title": title, "params": params, "runs": runs}


def parquet_table(size: int) -> Any:
    """A table whose Parquet file is about `size` bytes: random numbers compress little."""
    import numpy as np
    import pyarrow as pa

    rows = size // 16
    rng = np.random.default_rng(9)
    return pa.table({"a": rng.integers(0, 1 << 62, rows), "b": rng.random(rows)})


def parquet_write(url: str, path: str, table: Any) -> dict[str, Any]:
    """pyarrow writes the table as one Parquet file through `url` (S3FileSystem over http, as
    an analytics job configures it); the file's size and the MiB/s it was written at."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    host = url.split("://", 1)[1]
    s3 = fs.S3FileSystem(
        access_key="bench", secret_key="bench-secret", region="us-east-1",
        endpoint_override=host, scheme="http",
    )  # fmt: skip
    started = time.perf_counter()
    pq.write_table(table, f"{BUCKET}/{path}", filesystem=s3, compression="none")
    seconds = time.perf_counter() - started
    size = s3.get_file_info(f"{BUCKET}/{path}").size
    return {"file_bytes": size, "seconds": seconds, "mib_per_s": size / MIB / seconds}


def w9(rig: Rig, plan: Any) -> dict[str, Any]:
    """pyarrow writing a 48 MiB Parquet file, through s3tier and direct."""
    size = 48 * MIB if not plan.quick else 4 * MIB
    table = parquet_table(size)
    runs = against_direct(
        rig, plan, "W9",
        lambda t, rep: parquet_write(t.url, f"w9/{t.name}/r{rep}.parquet", table),
        lambda r: f"{r['mib_per_s']:7,.1f} MiB/s "
        f"({r['file_bytes'] / MIB:.1f} MiB in {r['seconds']:.2f} s)",
    )  # fmt: skip
    params = {"file_bytes": size, "peer": "direct"}
    return {
        "title": "pyarrow writing a Parquet file (peer: the upstream direct)",
        "params": params,
        "runs": runs,
    }


def aws_cp(url: str, source: Path, key: str, home: Path) -> dict[str, Any]:
    """`aws s3 cp` of one local file through `url`: multipart, 8 MiB parts, 10 at once."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config"
    config.write_text(
        "[default]\nregion = us-east-1\ns3 =\n  multipart_chunksize = 8MB\n"
        "  multipart_threshold = 8MB\n  max_concurrent_requests = 10\n",
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = Path(sys.executable).parent / "aws"
    argv = [str(aws), "--endpoint-url", url, "s3", "cp", "--only-show-errors", str(source)]
    started = time.perf_counter()
    subprocess.run([*argv, f"s3://{BUCKET}/{key}"], env=env, check=True, timeout=600)
    seconds = time.perf_counter() - started
    size = source.stat().st_size
    return {"seconds": seconds, "mib_per_s": size / MIB / seconds}


def w10(rig: Rig, plan: Any) -> dict[str, Any]:
    """A 256 MiB multipart upload with the aws cli, through s3tier and direct."""
    size = 256 * MIB if not plan.quick else 16 * MIB
    source = rig.scratch / "w10.bin"
    with source.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
    runs = against_direct(
        rig, plan, "W10",
        lambda t, rep: aws_cp(
            t.url, source, f"w10/{t.name}/r{rep}.bin", rig.scratch / f"w10-home-{t.name}"
        ),
        lambda r: f"{r['mib_per_s']:7,.1f} MiB/s",
    )  # fmt: skip
    source.unlink()
    params = {"file_bytes": size, "part_bytes": 8 * MIB, "concurrency": 10, "peer": "direct"}
    title = f"aws s3 cp of {size // MIB} MiB, multipart (peer: the upstream direct)"
    return {"title": title, "params": params, "runs": runs}
