"""The read path end to end: real moto upstream, real s3tier process, real boto3 and HTTP clients.

Upstream traffic is counted by the recording shim between s3tier and moto, so "fetched once"
is asserted from what actually crossed the wire.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import os
import time
from typing import Any

import pytest
import requests

from tests.harness import PeakRss, RepeatingFile, S3TierServer, comparable, s3_client
from tests.upstream_shim import UpstreamShim

MiB = 1 << 20


def status_of(response: Any) -> str:
    return str(response["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"])


def upstream_gets(shim: UpstreamShim, bucket: str, key: str) -> list[str]:
    """The Range header of every GET s3tier sent upstream for one object."""
    return [r.headers.get("Range", "") for r in shim.matching("GET", f"/{bucket}/{key}")]


def test_second_get_is_a_ram_hit_and_makes_no_upstream_request(
    s3: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"hello")
    first = s3.get_object(Bucket=bucket, Key="k")
    before = len(shim.matching(contains=f"/{bucket}/k"))
    second = s3.get_object(Bucket=bucket, Key="k")
    assert first["Body"].read() == second["Body"].read() == b"hello"
    assert (status_of(first), status_of(second)) == ("MISS", "HIT-RAM")
    assert len(shim.matching(contains=f"/{bucket}/k")) == before


def test_cold_miss_is_one_ranged_get_not_a_head_then_a_get(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="one", Body=b"x" * 1000)
    body = requests.get(f"{proxy_server.url}/{bucket}/one").content
    assert body == b"x" * 1000
    assert upstream_gets(shim, bucket, "one") == [f"bytes=0-{MiB - 1}"]
    assert shim.matching("HEAD", f"/{bucket}/one") == []


def test_concurrent_cold_gets_fetch_each_block_exactly_once(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(5 * MiB + 12345)
    direct.put_object(Bucket=bucket, Key="herd", Body=data)

    def fetch(_: int) -> bytes:
        return requests.get(f"{proxy_server.url}/{bucket}/herd", timeout=60).content

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        bodies = list(pool.map(fetch, range(32)))
    assert all(b == data for b in bodies)
    ranges = upstream_gets(shim, bucket, "herd")
    assert sorted(ranges) == sorted(f"bytes={i * MiB}-{(i + 1) * MiB - 1}" for i in range(6))


def test_a_waiter_that_disconnects_does_not_cancel_the_fetch_for_the_others(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="slow", Body=b"s" * 50_000)
    shim.stall_next(lambda r: f"/{bucket}/slow" in r.path, seconds=1.0)
    url = f"{proxy_server.url}/{bucket}/slow"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        impatient = pool.submit(requests.get, url, timeout=0.3)
        time.sleep(0.1)
        patient = pool.submit(requests.get, url, timeout=10)
        with pytest.raises(requests.exceptions.Timeout):
            impatient.result()
        assert patient.result().content == b"s" * 50_000
    assert len(upstream_gets(shim, bucket, "slow")) == 1
    assert requests.get(url).headers["x-cache-status"] == "HIT-RAM"


def test_whole_object_streams_across_blocks_byte_for_byte(
    s3: Any, direct: Any, bucket: str
) -> None:
    data = os.urandom(3 * MiB + 7)
    direct.put_object(Bucket=bucket, Key="multi", Body=data)
    for expected_status in ("MISS", "HIT-RAM"):
        got = s3.get_object(Bucket=bucket, Key="multi")
        assert got["Body"].read() == data
        assert status_of(got) == expected_status


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "slice_"),
    [
        ("bytes=0-9", 206, "bytes 0-9/2000000", slice(0, 10)),
        ("bytes=1048570-1048580", 206, "bytes 1048570-1048580/2000000", slice(1048570, 1048581)),
        ("bytes=1999990-", 206, "bytes 1999990-1999999/2000000", slice(1999990, None)),
        ("bytes=-5", 206, "bytes 1999995-1999999/2000000", slice(1999995, None)),
        ("bytes=-3000000", 206, "bytes 0-1999999/2000000", slice(0, None)),
        ("bytes=1999999-5000000", 206, "bytes 1999999-1999999/2000000", slice(1999999, None)),
        ("bytes=5-2", 200, None, slice(0, None)),
        ("bytes=0-1,5-6", 200, None, slice(0, None)),
        ("bites=0-1", 200, None, slice(0, None)),
        ("garbage", 200, None, slice(0, None)),
    ],
)
def test_range_forms_get_s3s_answers(
    proxy_server: S3TierServer,
    direct: Any,
    bucket: str,
    range_header: str,
    status: int,
    content_range: str | None,
    slice_: slice,
) -> None:
    data = os.urandom(2_000_000)
    direct.put_object(Bucket=bucket, Key="r", Body=data)
    for _ in range(2):  # cold, then from the cache
        got = requests.get(f"{proxy_server.url}/{bucket}/r", headers={"Range": range_header})
        assert got.status_code == status
        assert got.headers.get("Content-Range") == content_range
        assert got.content == data[slice_]
        assert int(got.headers["Content-Length"]) == len(data[slice_])


@pytest.mark.parametrize("range_header", ["bytes=2000000-", "bytes=3000000-3000010", "bytes=-0"])
def test_unsatisfiable_ranges_get_416_invalid_range_xml(
    proxy_server: S3TierServer, direct: Any, bucket: str, range_header: str
) -> None:
    direct.put_object(Bucket=bucket, Key="r", Body=b"z" * 2_000_000)
    got = requests.get(f"{proxy_server.url}/{bucket}/r", headers={"Range": range_header})
    assert got.status_code == 416
    assert "<Code>InvalidRange</Code>" in got.text


def test_range_on_empty_object_is_416_and_plain_get_is_empty_200(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="empty", Body=b"")
    plain = requests.get(f"{proxy_server.url}/{bucket}/empty")
    assert (plain.status_code, plain.content, plain.headers["Content-Length"]) == (200, b"", "0")
    ranged = requests.get(f"{proxy_server.url}/{bucket}/empty", headers={"Range": "bytes=0-5"})
    assert ranged.status_code == 416
    assert "<ActualObjectSize>0</ActualObjectSize>" in ranged.text


def test_206_never_carries_the_whole_object_checksum(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ck", Body=b"0123456789" * 100, ChecksumAlgorithm="CRC32")
    whole = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert whole["Body"].read() == b"0123456789" * 100
    assert whole["ResponseMetadata"]["HTTPHeaders"].get("x-amz-checksum-crc32")
    part = s3.get_object(Bucket=bucket, Key="ck", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert part["Body"].read() == b"0123456789"
    assert not any(h.startswith("x-amz-checksum-") for h in part["ResponseMetadata"]["HTTPHeaders"])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_headers_are_the_ones_s3_sent_on_miss_and_on_hit(
    proxy_server: S3TierServer, direct: Any, moto: Any, bucket: str, method: str
) -> None:
    direct.put_object(
        Bucket=bucket,
        Key="h",
        Body=b"payload",
        ContentType="text/x-special",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="h.txt"',
        ContentEncoding="identity",
        ContentLanguage="de",
        Metadata={"owner": "team-a", "mixed": "Value With Spaces"},
        Tagging="a=1&b=2",
    )
    signed = direct.generate_presigned_url(
        "get_object" if method == "GET" else "head_object", Params={"Bucket": bucket, "Key": "h"}
    )
    upstream = requests.request(method, signed)
    for expected in ("MISS", "HIT-RAM"):
        got = requests.request(method, f"{proxy_server.url}/{bucket}/h")
        assert got.status_code == upstream.status_code == 200
        assert comparable(got.headers) == comparable(upstream.headers)
        assert got.headers["x-cache-status"] == expected
        assert got.content == upstream.content


def test_gzip_encoded_objects_pass_as_stored_bytes(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    import gzip

    packed = gzip.compress(b"hello " * 1000)
    direct.put_object(Bucket=bucket, Key="z", Body=packed, ContentEncoding="gzip")
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", proxy_server.port)
        conn.request("GET", f"/{bucket}/z", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        assert response.read() == packed
        conn.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Match": "{etag}"}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": "*"}, 200),
        ({"If-Match": "{etag}", "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
        ({"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 412),
        ({"If-None-Match": "{etag}"}, 304),
        ({"If-None-Match": "{bare}"}, 304),
        ({"If-None-Match": '"other"', "If-Modified-Since": "{future}"}, 200),
        ({"If-Modified-Since": "{future}"}, 304),
        ({"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        ({"If-Match": "{etag}", "Range": "bytes=0-1"}, 206),
        ({"If-None-Match": "{etag}", "Range": "bytes=0-1"}, 304),
        ({"If-Match": '"nope"', "Range": "bytes=0-1"}, 412),
    ],
)
def test_conditional_requests_follow_s3_precedence(
    proxy_server: S3TierServer, direct: Any, bucket: str, headers: dict[str, str], status: int
) -> None:
    put = direct.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    etag = put["ETag"]
    values = {"etag": etag, "bare": etag.strip('"'), "future": "Mon, 01 Jan 2099 00:00:00 GMT"}
    sent = {k: v.format(**values) for k, v in headers.items()}
    for method in ("GET", "HEAD"):
        got = requests.request(method, f"{proxy_server.url}/{bucket}/c", headers=sent)
        assert got.status_code == status, (method, sent)
        if status == 304:
            assert got.headers["ETag"] == etag
            assert got.content == b""
        if status == 412 and method == "GET":
            assert "<Code>PreconditionFailed</Code>" in got.text
            assert got.headers["x-amz-request-id"] in got.text
        if status == 412 and method == "HEAD":
            assert got.content == b""


def test_errors_carry_the_request_id_of_their_header(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="e", Body=b"abc")
    got = requests.get(f"{proxy_server.url}/{bucket}/e", headers={"Range": "bytes=10-"})
    assert got.status_code == 416
    assert f"<RequestId>{got.headers['x-amz-request-id']}</RequestId>" in got.text
    assert f"<Resource>/{bucket}/e</Resource>" in got.text


def test_missing_key_passes_upstream_404_through_and_head_has_no_body(
    proxy_server: S3TierServer, bucket: str
) -> None:
    got = requests.get(f"{proxy_server.url}/{bucket}/absent")
    assert got.status_code == 404
    assert "<Code>NoSuchKey</Code>" in got.text
    head = requests.head(f"{proxy_server.url}/{bucket}/absent")
    assert (head.status_code, head.content) == (404, b"")
    suffix = requests.get(f"{proxy_server.url}/{bucket}/absent", headers={"Range": "bytes=-5"})
    assert suffix.status_code == 404
    assert "<Code>NoSuchKey</Code>" in suffix.text


def test_strict_freshness_sees_an_overwrite_made_directly_upstream(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--freshness", "strict")
    client = s3_client(server.url)
    direct.put_object(Bucket=bucket, Key="s", Body=b"old")
    assert client.get_object(Bucket=bucket, Key="s")["Body"].read() == b"old"
    again = client.get_object(Bucket=bucket, Key="s")
    assert (again["Body"].read(), status_of(again)) == (b"old", "REVALIDATED")
    direct.put_object(Bucket=bucket, Key="s", Body=b"new!")
    fresh = client.get_object(Bucket=bucket, Key="s")
    assert (fresh["Body"].read(), status_of(fresh)) == (b"new!", "MISS")
    direct.delete_object(Bucket=bucket, Key="s")
    gone = requests.get(f"{server.url}/{bucket}/s")
    assert gone.status_code == 404


def test_ttl_freshness_revalidates_after_its_age(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--freshness", "ttl:0.5")
    direct.put_object(Bucket=bucket, Key="t", Body=b"ttl")
    assert requests.get(f"{server.url}/{bucket}/t").headers["x-cache-status"] == "MISS"
    assert requests.get(f"{server.url}/{bucket}/t").headers["x-cache-status"] == "HIT-RAM"
    time.sleep(0.6)
    assert requests.get(f"{server.url}/{bucket}/t").headers["x-cache-status"] == "REVALIDATED"


def test_immutable_freshness_never_asks_the_upstream_again(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier("--freshness", "immutable")
    direct.put_object(Bucket=bucket, Key="i", Body=b"content-addressed")
    requests.get(f"{server.url}/{bucket}/i")
    seen = len(shim.matching(contains=f"/{bucket}/i"))
    direct.put_object(Bucket=bucket, Key="i", Body=b"changed behind the proxy")
    got = requests.get(f"{server.url}/{bucket}/i")
    assert (got.content, got.headers["x-cache-status"]) == (b"content-addressed", "HIT-RAM")
    assert len(shim.matching(contains=f"/{bucket}/i")) == seen


def test_restart_serves_the_disk_tier_without_downloading_again(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier("--freshness", "immutable")
    data = os.urandom(2 * MiB + 3)
    direct.put_object(Bucket=bucket, Key="d", Body=data)
    assert requests.get(f"{server.url}/{bucket}/d").content == data
    time.sleep(0.5)  # let the background disk writes land
    server.restart()
    shim.clear()
    got = requests.get(f"{server.url}/{bucket}/d")
    assert got.content == data
    assert got.headers["x-cache-status"] == "HIT-DISK"
    assert shim.matching(contains=f"/{bucket}/d") == []


def test_restart_with_ttl_revalidates_with_a_304_and_no_body(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier("--freshness", "ttl:0.1")
    direct.put_object(Bucket=bucket, Key="d", Body=b"r" * 5000)
    requests.get(f"{server.url}/{bucket}/d")
    time.sleep(0.5)
    server.restart()
    shim.clear()
    got = requests.get(f"{server.url}/{bucket}/d")
    assert (got.content, got.headers["x-cache-status"]) == (b"r" * 5000, "REVALIDATED")
    assert [r.status for r in shim.matching(contains=f"/{bucket}/d")] == [304]


def test_upstream_break_mid_body_fails_the_client_and_caches_nothing(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(4 * MiB)
    direct.put_object(Bucket=bucket, Key="b", Body=data)
    # Every attempt breaks: a single break is retried (tests/test_faults_transient.py).
    shim.break_next(
        lambda r: (
            f"/{bucket}/b" in r.path and r.headers.get("Range", "").startswith("bytes=2097152-")
        ),
        after_bytes=1000,
        times=None,
    )
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{proxy_server.url}/{bucket}/b").content  # noqa: B018 - reading is the test
    shim.clear_faults()
    again = requests.get(f"{proxy_server.url}/{bucket}/b")
    assert again.content == data
    # The first attempt and its two retries, all broken; then the one after the fault is gone.
    assert upstream_gets(shim, bucket, "b").count(f"bytes=2097152-{3 * MiB - 1}") == 3 + 1


def test_upstream_break_in_the_first_block_ends_the_body_short_and_caches_nothing(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    direct.put_object(Bucket=bucket, Key="f", Body=b"q" * 100_000)
    # Every attempt breaks: a single break is resumed (tests/test_cutthrough_e2e.py). The
    # first bytes went to the client as they came (cut-through), so it can only be cut short.
    shim.break_next(
        lambda r: f"/{bucket}/f" in r.path and r.method == "GET", after_bytes=10, times=None
    )
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{proxy_server.url}/{bucket}/f").content  # noqa: B018 - reading is the test
    shim.clear_faults()
    again = requests.get(f"{proxy_server.url}/{bucket}/f")
    assert (again.status_code, again.content) == (200, b"q" * 100_000)
    assert again.headers["x-cache-status"] == "MISS"


def test_unreachable_upstream_answers_503_service_unavailable_xml(
    start_s3tier: Any, bucket: str
) -> None:
    from tests.harness import free_port

    server = start_s3tier(upstream=f"http://127.0.0.1:{free_port()}")
    got = requests.get(f"{server.url}/{bucket}/k")
    assert got.status_code == 503
    assert "<Code>ServiceUnavailable</Code>" in got.text
    assert f"<RequestId>{got.headers['x-amz-request-id']}</RequestId>" in got.text
    head = requests.head(f"{server.url}/{bucket}/k")
    assert (head.status_code, head.content) == (503, b"")


def test_serve_stale_on_error_answers_stale_when_the_upstream_is_gone(
    start_s3tier: Any, moto: Any, direct: Any, bucket: str
) -> None:
    own_shim = UpstreamShim(moto.url)
    own_shim.start()
    try:
        server = start_s3tier(
            "--serve-stale-on-error", "--freshness", "ttl:0.2", upstream=own_shim.url
        )
        direct.put_object(Bucket=bucket, Key="st", Body=b"still here")
        assert requests.get(f"{server.url}/{bucket}/st").headers["x-cache-status"] == "MISS"
    finally:
        own_shim.stop()
    time.sleep(0.3)
    got = requests.get(f"{server.url}/{bucket}/st")
    assert (got.status_code, got.content, got.headers["x-cache-status"]) == (
        200,
        b"still here",
        "STALE",
    )


def test_large_object_streams_with_bounded_server_memory(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier(
        "--block-size", "8MiB", "--ram-bytes", "16MiB", "--ram-max-object", "8MiB",
        "--prefetch-bytes", "16MiB",
    )  # fmt: skip
    size = 256 * MiB
    chunk = os.urandom(MiB)
    direct.upload_fileobj(RepeatingFile(chunk, size // MiB), bucket, "huge")
    expected = hashlib.sha256(chunk * (size // MiB)).hexdigest()
    with PeakRss(server.pid) as rss:
        digest = hashlib.sha256()
        with requests.get(f"{server.url}/{bucket}/huge", stream=True, timeout=300) as got:
            for piece in got.iter_content(MiB):
                digest.update(piece)
    assert digest.hexdigest() == expected
    # What may be held: the stream's two blocks (16 MiB), the prefetch budget (16 MiB), the RAM
    # tier (16 MiB) and blocks waiting for their disk write: far below the object's 256 MiB,
    # and the same whatever its size.
    assert rss.growth < 120 * MiB, (rss.baseline, rss.peak)
