"""Create a workload's bucket and objects, through the proxy or directly on the upstream.

    python loadtests/seed.py hot_set --endpoint http://127.0.0.1:8080
    python loadtests/seed.py parquet_ranges --endpoint http://127.0.0.1:9000 --objects 4

Objects already present with the expected size are kept, so seeding again is quick. Seeding
through s3tier writes through its cache (PUT bodies are cached on the way), so a cold scan after
that is not cold: `make loadtest` seeds the upstream directly. Requests are signed with the
standard AWS credential chain when it finds credentials, and unsigned otherwise.
"""

from __future__ import annotations

import concurrent.futures
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import configargparse
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from common import WORKLOADS, Dataset, ObjectSpec, add_options, object_bytes

UPLOAD_THREADS = 8


@dataclass(frozen=True, slots=True)
class SeedResult:
    objects: int
    uploaded: int
    bytes_total: int
    seconds: float

    def describe(self, dataset: Dataset) -> str:
        return (
            f"seeded s3://{dataset.bucket}/{dataset.prefix}: {self.objects} objects, "
            f"{self.bytes_total / 2**20:.1f} MiB, {self.uploaded} uploaded, "
            f"{self.objects - self.uploaded} already there, {self.seconds:.1f} s"
        )


def parse_args(argv: Sequence[str]) -> Any:
    # The defaults of the dataset options depend on the workload, so find it first.
    workload = next((arg for arg in argv if arg in WORKLOADS), "hot_set")
    parser = configargparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=configargparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument(
        "--endpoint",
        env_var="LOADTEST_ENDPOINT",
        default="http://127.0.0.1:8080",
        help="S3 endpoint to write to: s3tier, or its upstream",
    )
    add_options(parser, workload, *_extra_options(workload))
    return parser.parse_args(argv)


def _extra_options(workload: str) -> tuple[Any, ...]:
    if workload != "parquet_ranges":
        return ()
    import parquet_layout  # pyarrow only where it is needed

    return parquet_layout.OPTIONS


def client(endpoint: str) -> Any:
    signing = {} if boto3.Session().get_credentials() else {"signature_version": UNSIGNED}
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=UPLOAD_THREADS + 2,
        **signing,
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def existing_sizes(s3: Any, dataset: Dataset) -> dict[str, int]:
    sizes: dict[str, int] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=dataset.bucket, Prefix=dataset.prefix
    )
    for page in pages:
        sizes.update((item["Key"], item["Size"]) for item in page.get("Contents", ()))
    return sizes


def body_maker(options: Any, dataset: Dataset) -> Any:
    """A function from an object's spec to its bytes: random, or a Parquet file of that size."""
    if options.workload != "parquet_ranges":
        return lambda spec: object_bytes(dataset, spec)
    import parquet_layout

    def parquet(spec: ObjectSpec) -> bytes:
        rng = random.Random(f"{dataset.seed}:{spec.key}")
        columns, groups = options.parquet_columns, options.parquet_row_groups
        return parquet_layout.parquet_bytes(rng, spec.size, columns, groups)

    return parquet


def seed(options: Any) -> tuple[Dataset, SeedResult]:
    dataset = Dataset.from_options(options)
    s3 = client(options.endpoint)
    started = time.monotonic()
    ensure_bucket(s3, dataset.bucket)
    present = existing_sizes(s3, dataset)
    make_body = body_maker(options, dataset)

    def put(spec: ObjectSpec) -> tuple[int, bool]:
        body = make_body(spec)
        if present.get(spec.key) == len(body):
            return len(body), False
        s3.put_object(Bucket=dataset.bucket, Key=spec.key, Body=body)
        return len(body), True

    with concurrent.futures.ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        outcomes = list(pool.map(put, dataset.specs()))
    return dataset, SeedResult(
        objects=len(outcomes),
        uploaded=sum(uploaded for _, uploaded in outcomes),
        bytes_total=sum(size for size, _ in outcomes),
        seconds=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    dataset, result = seed(parse_args(sys.argv[1:] if argv is None else argv))
    print(result.describe(dataset), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
