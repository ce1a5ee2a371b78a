"""Writes through the proxy: conditional PUTs decided by the upstream alone, write-through
caching of accepted bodies, and no trace of rejected ones."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
import time
from typing import Any

import pytest
import requests

from tests.harness import PeakRss, RepeatingFile, S3TierServer, comparable, s3_client
from tests.upstream_shim import UpstreamShim


def test_put_then_get_is_a_hit_with_the_new_bytes_and_s3s_headers(
    s3: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(2_500_000)
    put = s3.put_object(
        Bucket=bucket, Key="w", Body=data, ContentType="application/x-test", Metadata={"k": "v"}
    )
    got = s3.get_object(Bucket=bucket, Key="w")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    # Confirmed by one HEAD (the write's first read), the bytes from the cache: no GET upstream.
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "REVALIDATED"
    assert [r.method for r in shim.matching(contains=f"/{bucket}/w")] == ["PUT", "HEAD"]
    again = s3.get_object(Bucket=bucket, Key="w")
    assert again["Body"].read() == data
    assert again["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "HIT-RAM"
    upstream = direct.get_object(Bucket=bucket, Key="w", ChecksumMode="ENABLED")
    upstream["Body"].read()
    mine = comparable(got["ResponseMetadata"]["HTTPHeaders"])
    theirs = comparable(upstream["ResponseMetadata"]["HTTPHeaders"])
    assert mine == theirs


def test_concurrent_if_none_match_puts_have_exactly_one_winner(
    proxy_server: S3TierServer, bucket: str
) -> None:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
    session.mount("http://", adapter)

    def attempt(args: tuple[int, int]) -> int:
        round_, writer = args
        url = f"{proxy_server.url}/{bucket}/lock-{round_}"
        return session.put(
            url, data=f"w{writer}".encode(), headers={"If-None-Match": "*"}
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for round_ in range(100):
            codes = list(pool.map(attempt, [(round_, w) for w in range(16)]))
            assert codes.count(200) == 1, (round_, codes)
            assert set(codes) <= {200, 409, 412}, (round_, codes)
            winner = requests.get(f"{proxy_server.url}/{bucket}/lock-{round_}")
            assert winner.status_code == 200 and winner.content.startswith(b"w")


def test_if_match_with_a_stale_etag_is_refused_and_the_current_object_still_served(
    s3: Any, bucket: str
) -> None:
    first = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=first["ETag"])
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=first["ETag"])
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    got = s3.get_object(Bucket=bucket, Key="cas")
    assert got["Body"].read() == b"v2"


def test_a_rejected_put_leaves_no_trace_in_the_cache(
    proxy_server: S3TierServer, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"original")
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"original"
    refused = requests.put(
        f"{proxy_server.url}/{bucket}/keep",
        data=b"replacement",
        headers={"If-None-Match": "*"},
    )
    assert refused.status_code == 412
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"original"


def test_a_wrong_payload_hash_is_refused_and_nothing_is_stored(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    body = os.urandom(300_000)
    wrong = hashlib.sha256(b"something else").hexdigest()
    got = requests.put(
        f"{proxy_server.url}/{bucket}/bad", data=body, headers={"x-amz-content-sha256": wrong}
    )
    assert got.status_code == 400
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in got.text
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=bucket, Key="bad")
    assert requests.get(f"{proxy_server.url}/{bucket}/bad").status_code == 404


def test_a_put_larger_than_the_cache_limit_is_stored_but_not_cached(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--put-cache-max", "1MiB")
    client = s3_client(server.url)
    data = os.urandom(3_000_000)
    client.put_object(Bucket=bucket, Key="big", Body=data)
    got = client.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == data
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "MISS"
    assert direct.get_object(Bucket=bucket, Key="big")["Body"].read() == data


def test_a_fill_that_started_before_a_write_never_lands_after_it(
    proxy_server: S3TierServer, direct: Any, s3: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="race", Body=b"old version")
    shim.stall_next(lambda r: r.method == "GET" and f"/{bucket}/race" in r.path, seconds=1.0)
    old_read: list[bytes] = []
    reader = threading.Thread(
        target=lambda: old_read.append(requests.get(f"{proxy_server.url}/{bucket}/race").content)
    )
    reader.start()
    time.sleep(0.3)  # the fill is now waiting on the stalled upstream answer
    s3.put_object(Bucket=bucket, Key="race", Body=b"new version")
    reader.join()
    assert old_read == [b"old version"]  # the read that began before the write
    for _ in range(2):
        assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == b"new version"


def test_delete_through_the_proxy_is_seen_at_once_even_under_immutable(
    start_s3tier: Any, bucket: str
) -> None:
    server = start_s3tier("--freshness", "immutable")
    client = s3_client(server.url)
    client.put_object(Bucket=bucket, Key="gone", Body=b"here")
    assert client.get_object(Bucket=bucket, Key="gone")["Body"].read() == b"here"
    client.delete_object(Bucket=bucket, Key="gone")
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key="gone")
    client.put_object(Bucket=bucket, Key="gone", Body=b"back")
    assert client.get_object(Bucket=bucket, Key="gone")["Body"].read() == b"back"


def test_a_large_put_streams_through_with_bounded_server_memory(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--put-cache-max", "256MiB", "--ram-bytes", "16MiB")
    size, piece = 192 << 20, os.urandom(1 << 20)
    expected = hashlib.sha256(piece * (size // len(piece))).hexdigest()
    with PeakRss(server.pid) as rss:
        got = requests.put(
            f"{server.url}/{bucket}/large",
            data=RepeatingFile(piece, size // len(piece)),
            timeout=300,
        )
    assert got.status_code == 200, got.text
    stored = direct.get_object(Bucket=bucket, Key="large")["Body"]
    assert hashlib.sha256(stored.read()).hexdigest() == expected
    # The body is spooled to a file, not held: growth stays far below its 192 MiB.
    assert rss.growth < 80 << 20, (rss.baseline, rss.peak)


def test_a_write_nobody_reads_costs_the_upstream_only_the_write(
    s3: Any, bucket: str, shim: UpstreamShim
) -> None:
    path = f"/{bucket}/written-only"
    for i in range(5):
        s3.put_object(Bucket=bucket, Key="written-only", Body=os.urandom(50_000 + i))
    time.sleep(0.5)  # the bodies go into the cache in the background
    assert [r.method for r in shim.matching(contains=path)] == ["PUT"] * 5


def test_the_first_read_of_a_write_finds_the_latest_version_when_it_was_written_again(
    s3: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    s3.put_object(Bucket=bucket, Key="twice", Body=b"first" * 1000)
    direct.put_object(Bucket=bucket, Key="twice", Body=b"second" * 1000)  # behind the proxy
    got = s3.get_object(Bucket=bucket, Key="twice")
    assert got["Body"].read() == b"second" * 1000  # the HEAD named another version: a miss
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "MISS"


def test_a_write_whose_confirming_head_fails_is_read_from_the_upstream(
    s3: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(200_000)
    path = f"/{bucket}/unconfirmed"
    unconfirmed = lambda r: r.method == "HEAD" and r.path.startswith(path)  # noqa: E731
    shim.answer_next(unconfirmed, 503, b"", times=None)  # retries fail too
    put = s3.put_object(Bucket=bucket, Key="unconfirmed", Body=data)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200  # the write itself succeeded
    got = s3.get_object(Bucket=bucket, Key="unconfirmed")
    assert got["Body"].read() == data
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "MISS"
