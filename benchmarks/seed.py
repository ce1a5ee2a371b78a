"""Objects for the benchmark, written straight into the upstream and readable without a
signature (the nginx peer does not sign).

PUTs are SigV4-signed by botocore with an unsigned payload and carry `x-amz-acl: public-read`;
the bucket is public-read too. Bodies are made from a seeded random chunk repeated, so seeding
a 1 GiB object costs one allocation, not a gigabyte of random numbers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from servers import CREDENTIALS

BUCKET = "s3tier-bench"
REGION = "us-east-1"
CHUNK_BYTES = 1 << 20
PUT_CONCURRENCY = 12


@dataclass(frozen=True, slots=True)
class Obj:
    key: str
    size: int

    @property
    def path(self) -> str:
        return f"/{BUCKET}/{self.key}"


def body(obj: Obj) -> bytes:
    chunk = random.Random(obj.key).randbytes(min(obj.size, CHUNK_BYTES))
    whole, rest = divmod(obj.size, len(chunk)) if chunk else (0, 0)
    return chunk * whole + chunk[:rest]


def _signed(method: str, url: str, extra: dict[str, str]) -> dict[str, str]:
    credentials = Credentials(
        CREDENTIALS["AWS_ACCESS_KEY_ID"], CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    )
    request = AWSRequest(
        method=method,
        url=url,
        headers={
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            **extra,
        },
    )
    S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    return dict(request.headers.items())


async def _put(http: aiohttp.ClientSession, base: str, path: str, data: bytes) -> None:
    url = base + path
    headers = _signed("PUT", url, {"x-amz-acl": "public-read"})
    async with http.put(url, data=data, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"seeding {path}: {answer.status} {await answer.text()}")


async def _seed(base: str, objects: Sequence[Obj], create_bucket: bool) -> None:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        if create_bucket:
            await _put(http, base, f"/{BUCKET}", b"")
        pending = iter(objects)

        async def worker() -> None:
            for obj in pending:
                await _put(http, base, obj.path, body(obj))

        await asyncio.gather(*(worker() for _ in range(PUT_CONCURRENCY)))


def seed(base: str, objects: Sequence[Obj], create_bucket: bool = False) -> float:
    """PUT every object into the upstream at `base`; returns the seconds it took."""
    started = time.monotonic()
    asyncio.run(_seed(base, objects, create_bucket))
    return time.monotonic() - started
