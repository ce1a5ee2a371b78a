"""Forwarding, end to end: every S3 call that is not a cacheable read goes through s3tier to the
upstream and comes back as the upstream answered it, and a write through s3tier is never hidden
by what s3tier cached before it.

Each test makes the call through s3tier with boto3, makes the same call (or a read) straight to
moto with `direct`, and checks both agree and that the shim saw s3tier forward the request.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.harness import S3TierServer, s3_client
from tests.upstream_shim import Recorded, UpstreamShim

MiB = 1 << 20
LISTED_KEYS = (
    "a/1.txt",
    "a/2.txt",
    "a/b/3.txt",
    "b/4.txt",
    "plus+sign",
    "top",
    "ünï côdé/ø.txt",
    "with space/x y.txt",
)


# -- helpers ------------------------------------------------------------------------------------


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    return response["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[no-any-return]


def status_of(response: dict[str, Any]) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]  # type: ignore[no-any-return]


def cache_status(response: dict[str, Any]) -> str | None:
    return headers_of(response).get("x-cache-status")


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 answer minus what differs per request (ids, dates, connection headers)."""
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


def failure(call: Callable[..., Any], **params: Any) -> tuple[int, dict[str, Any]]:
    """The status and parsed <Error> of a call that must fail."""
    with pytest.raises(ClientError) as info:
        call(**params)
    answer = info.value.response
    return answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]


def object_path(bucket: str, key: str) -> str:
    """The path s3tier sends upstream for a key: SigV4's encoding, '/' kept as a separator."""
    return f"/{bucket}/{quote(key, safe='/~')}"


def forwarded(shim: UpstreamShim, method: str, path: str, *query_names: str) -> list[Recorded]:
    """Upstream requests with this method, exactly this path and (at least) these parameters."""
    found = []
    for record in shim.matching(method):
        raw_path, _, query = record.path.partition("?")
        names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
        if raw_path == path and set(query_names) <= names:
            found.append(record)
    return found


def lower_keys(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def put_parts(client: Any, bucket: str, key: str, parts: list[bytes]) -> dict[str, Any]:
    """A whole multipart upload through `client`; returns CompleteMultipartUpload's answer."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return client.complete_multipart_upload(  # type: ignore[no-any-return]
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )


def read_cached(s3: Any, bucket: str, key: str, expected: bytes) -> None:
    """Read a key through s3tier until it is served from the cache, asserting its body."""
    first = s3.get_object(Bucket=bucket, Key=key)
    second = s3.get_object(Bucket=bucket, Key=key)
    assert first["Body"].read() == second["Body"].read() == expected
    assert cache_status(second) == "HIT-RAM"


@pytest.fixture(autouse=True)
def _forget_earlier_requests(shim: UpstreamShim) -> None:
    shim.clear()


@pytest.fixture
def listed(direct: Any, bucket: str) -> str:
    """A bucket holding LISTED_KEYS, written straight to the upstream."""
    for key in LISTED_KEYS:
        direct.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


# -- service and bucket calls -------------------------------------------------------------------


def test_list_buckets_returns_the_upstreams_buckets(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    through = s3.list_buckets()
    there = direct.list_buckets()
    assert without_metadata(through) == without_metadata(there)
    assert bucket in [b["Name"] for b in through["Buckets"]]
    assert forwarded(shim, "GET", "/")


def test_create_bucket_and_delete_bucket_reach_the_upstream(
    s3: Any, direct: Any, shim: UpstreamShim
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    created = s3.create_bucket(Bucket=name)
    assert status_of(created) == 200
    assert status_of(direct.head_bucket(Bucket=name)) == 200
    assert forwarded(shim, "PUT", f"/{name}")

    deleted = s3.delete_bucket(Bucket=name)
    assert status_of(deleted) == 204
    assert failure(direct.head_bucket, Bucket=name)[0] == 404
    assert forwarded(shim, "DELETE", f"/{name}")


def test_head_bucket_answers_as_the_upstream_does(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    through = s3.head_bucket(Bucket=bucket)
    there = direct.head_bucket(Bucket=bucket)
    assert status_of(through) == status_of(there) == 200
    assert without_metadata(through) == without_metadata(there)
    assert forwarded(shim, "HEAD", f"/{bucket}")


@pytest.mark.parametrize(
    "operation, params",
    [
        ("list_objects_v2", {}),
        ("head_bucket", {}),
        ("put_object", {"Key": "k", "Body": b"x"}),
        ("get_object", {"Key": "k"}),  # the cacheable path: its miss is the upstream's 404
    ],
)
def test_a_missing_bucket_is_the_upstreams_404_no_such_bucket(
    s3: Any, direct: Any, operation: str, params: dict[str, Any]
) -> None:
    missing = f"t-missing-{uuid.uuid4().hex[:12]}"
    through = failure(getattr(s3, operation), Bucket=missing, **params)
    there = failure(getattr(direct, operation), Bucket=missing, **params)
    assert through == there
    assert through[0] == 404
    if operation != "head_bucket":  # a HEAD answer has no error document to carry a code
        assert through[1]["Code"] == "NoSuchBucket"


# -- listings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"Prefix": "a/"},
        {"Delimiter": "/"},
        {"Prefix": "a/", "Delimiter": "/"},
        {"Prefix": "ünï côdé/"},
        {"Prefix": "with space/"},
        {"StartAfter": "a/2.txt"},
    ],
    ids=["all", "prefix", "delimiter", "prefix-and-delimiter", "unicode", "space", "start-after"],
)
def test_list_objects_v2_returns_the_upstreams_listing(
    s3: Any, direct: Any, shim: UpstreamShim, listed: str, params: dict[str, str]
) -> None:
    through = s3.list_objects_v2(Bucket=listed, **params)
    there = direct.list_objects_v2(Bucket=listed, **params)
    assert without_metadata(through) == without_metadata(there)
    assert forwarded(shim, "GET", f"/{listed}", "list-type")


def test_list_objects_v2_pages_with_max_keys_and_continuation_token(
    s3: Any, direct: Any, listed: str
) -> None:
    keys: list[str] = []
    token: dict[str, str] = {}
    pages = 0
    while True:
        through = s3.list_objects_v2(Bucket=listed, MaxKeys=3, **token)
        there = direct.list_objects_v2(Bucket=listed, MaxKeys=3, **token)
        assert without_metadata(through) == without_metadata(there)
        keys += [item["Key"] for item in through["Contents"]]
        pages += 1
        if not through["IsTruncated"]:
            break
        token = {"ContinuationToken": through["NextContinuationToken"]}
    assert pages == 3
    assert keys == sorted(LISTED_KEYS)


@pytest.mark.parametrize(
    "params",
    [{}, {"Prefix": "a/", "Delimiter": "/"}, {"Marker": "a/b/3.txt"}, {"Prefix": "ünï"}],
    ids=["all", "prefix-and-delimiter", "marker", "unicode"],
)
def test_list_objects_v1_returns_the_upstreams_listing(
    s3: Any, direct: Any, shim: UpstreamShim, listed: str, params: dict[str, str]
) -> None:
    through = s3.list_objects(Bucket=listed, **params)
    there = direct.list_objects(Bucket=listed, **params)
    assert without_metadata(through) == without_metadata(there)
    assert forwarded(shim, "GET", f"/{listed}")


def test_list_objects_v1_pages_with_max_keys_and_marker(s3: Any, direct: Any, listed: str) -> None:
    keys: list[str] = []
    marker: dict[str, str] = {}
    while True:
        through = s3.list_objects(Bucket=listed, MaxKeys=3, **marker)
        there = direct.list_objects(Bucket=listed, MaxKeys=3, **marker)
        assert without_metadata(through) == without_metadata(there)
        keys += [item["Key"] for item in through["Contents"]]
        if not through["IsTruncated"]:
            break
        marker = {"Marker": keys[-1]}
    assert keys == sorted(LISTED_KEYS)


# -- object writes ------------------------------------------------------------------------------


def test_put_object_then_get_object_round_trips_bytes_type_and_metadata(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    data = os.urandom(300_000)
    put = s3.put_object(
        Bucket=bucket, Key="r/t.bin", Body=data, ContentType="application/x-t", Metadata={"m": "1"}
    )
    got = s3.get_object(Bucket=bucket, Key="r/t.bin")
    there = direct.get_object(Bucket=bucket, Key="r/t.bin")
    assert got["Body"].read() == there["Body"].read() == data
    assert put["ETag"] == got["ETag"] == there["ETag"]
    assert got["ContentType"] == there["ContentType"] == "application/x-t"
    assert got["Metadata"] == there["Metadata"] == {"m": "1"}
    assert forwarded(shim, "PUT", f"/{bucket}/r/t.bin")


def test_a_write_through_the_proxy_is_visible_to_the_next_read_through_it(
    s3: Any, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="w", Body=b"before the write")
    read_cached(s3, bucket, "w", b"before the write")  # fresh for the default ttl of 5 s
    s3.put_object(Bucket=bucket, Key="w", Body=b"after the write")
    assert s3.get_object(Bucket=bucket, Key="w")["Body"].read() == b"after the write"


def test_delete_object_makes_a_cached_object_404_no_such_key(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="gone", Body=b"cached then deleted")
    read_cached(s3, bucket, "gone", b"cached then deleted")
    deleted = s3.delete_object(Bucket=bucket, Key="gone")
    assert status_of(deleted) == 204
    assert forwarded(shim, "DELETE", f"/{bucket}/gone")
    assert failure(direct.get_object, Bucket=bucket, Key="gone")[1]["Code"] == "NoSuchKey"
    status, error = failure(s3.get_object, Bucket=bucket, Key="gone")
    assert (status, error["Code"]) == (404, "NoSuchKey")
    assert failure(s3.head_object, Bucket=bucket, Key="gone")[0] == 404


def test_delete_objects_makes_every_cached_key_it_names_404_no_such_key(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    keys = ["one", "two/2", "three 3", "fünf&<5>"]
    for key in keys:
        direct.put_object(Bucket=bucket, Key=key, Body=f"body of {key}".encode())
        read_cached(s3, bucket, key, f"body of {key}".encode())
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys]})
    assert sorted(d["Key"] for d in answer["Deleted"]) == sorted(keys)
    assert forwarded(shim, "POST", f"/{bucket}", "delete")
    for key in keys:
        status, error = failure(s3.get_object, Bucket=bucket, Key=key)
        assert (key, status, error["Code"]) == (key, 404, "NoSuchKey")


def test_copy_object_replaces_a_cached_destination(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="src file", Body=b"new content")
    direct.put_object(Bucket=bucket, Key="dst", Body=b"old content, cached")
    read_cached(s3, bucket, "dst", b"old content, cached")
    copied = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src file"}
    )
    assert (
        copied["CopyObjectResult"]["ETag"] == direct.head_object(Bucket=bucket, Key="dst")["ETag"]
    )
    assert forwarded(shim, "PUT", f"/{bucket}/dst")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"new content"


def test_multipart_upload_replaces_a_cached_object_with_the_assembled_bytes(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="mp", Body=b"old, cached")
    read_cached(s3, bucket, "mp", b"old, cached")
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7)]
    done = put_parts(s3, bucket, "mp", parts)
    assert done["ETag"].endswith('-2"')
    assert len(forwarded(shim, "PUT", f"/{bucket}/mp", "partNumber", "uploadId")) == 2
    assert forwarded(shim, "POST", f"/{bucket}/mp", "uploads")
    assert forwarded(shim, "POST", f"/{bucket}/mp", "uploadId")
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["ETag"] == done["ETag"]
    assert got["Body"].read() == direct.get_object(Bucket=bucket, Key="mp")["Body"].read()
    assert direct.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


def test_put_and_get_object_tagging_pass_through(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="tagged", Body=b"t")
    tags = [{"Key": "team", "Value": "data"}, {"Key": "with space", "Value": "a b+c"}]
    s3.put_object_tagging(Bucket=bucket, Key="tagged", Tagging={"TagSet": tags})
    through = s3.get_object_tagging(Bucket=bucket, Key="tagged")
    there = direct.get_object_tagging(Bucket=bucket, Key="tagged")
    assert without_metadata(through) == without_metadata(there)
    assert sorted(through["TagSet"], key=lambda t: t["Key"]) == tags
    assert forwarded(shim, "PUT", f"/{bucket}/tagged", "tagging")
    assert forwarded(shim, "GET", f"/{bucket}/tagged", "tagging")
    # A tagging read is not an object read: the object's bytes are still its own.
    assert s3.get_object(Bucket=bucket, Key="tagged")["Body"].read() == b"t"


def test_put_and_get_object_acl_pass_through(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="acl", Body=b"a")
    s3.put_object_acl(Bucket=bucket, Key="acl", ACL="public-read")
    through = s3.get_object_acl(Bucket=bucket, Key="acl")
    there = direct.get_object_acl(Bucket=bucket, Key="acl")
    assert without_metadata(through) == without_metadata(there)
    everyone = "http://acs.amazonaws.com/groups/global/AllUsers"
    assert {"Grantee": {"Type": "Group", "URI": everyone}, "Permission": "READ"} in through[
        "Grants"
    ]
    assert forwarded(shim, "PUT", f"/{bucket}/acl", "acl")
    assert forwarded(shim, "GET", f"/{bucket}/acl", "acl")


# -- object reads that bypass the cache ---------------------------------------------------------


def test_get_object_with_version_id_returns_that_version_and_bypasses(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    direct.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = direct.put_object(Bucket=bucket, Key="v", Body=b"first version")["VersionId"]
    second = direct.put_object(Bucket=bucket, Key="v", Body=b"second version")["VersionId"]
    read_cached(s3, bucket, "v", b"second version")
    for version, body in ((first, b"first version"), (second, b"second version")):
        got = s3.get_object(Bucket=bucket, Key="v", VersionId=version)
        assert (got["Body"].read(), got["VersionId"]) == (body, version)
        assert cache_status(got) == "BYPASS"
        assert forwarded(shim, "GET", f"/{bucket}/v", "versionId")
    # The versioned reads did not disturb the cached latest version.
    latest = s3.get_object(Bucket=bucket, Key="v")
    assert (latest["Body"].read(), cache_status(latest)) == (b"second version", "HIT-RAM")


def test_get_object_with_part_number_is_the_upstreams_answer_and_bypasses(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    put_parts(direct, bucket, "parts", [os.urandom(5 * MiB), b"a short last part"])
    through = s3.get_object(Bucket=bucket, Key="parts", PartNumber=1)
    there = direct.get_object(Bucket=bucket, Key="parts", PartNumber=1)
    assert through["Body"].read() == there["Body"].read()
    assert {k: v for k, v in through.items() if k not in ("Body", "ResponseMetadata")} == {
        k: v for k, v in there.items() if k not in ("Body", "ResponseMetadata")
    }
    assert cache_status(through) == "BYPASS"
    assert forwarded(shim, "GET", f"/{bucket}/parts", "partNumber")


def test_response_header_overrides_apply_to_their_own_answer_and_never_leak(
    s3: Any, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="o", Body=b"override me", ContentType="text/plain")
    overrides = {
        "ResponseContentType": "application/x-overridden",
        "ResponseContentDisposition": 'attachment; filename="o.bin"',
    }
    for expected_plain_status in ("MISS", "HIT-RAM"):
        custom = s3.get_object(Bucket=bucket, Key="o", **overrides)
        assert custom["Body"].read() == b"override me"
        assert custom["ContentType"] == "application/x-overridden"
        assert custom["ContentDisposition"] == 'attachment; filename="o.bin"'
        assert cache_status(custom) == "BYPASS"
        plain = s3.get_object(Bucket=bucket, Key="o")
        assert plain["Body"].read() == b"override me"
        assert plain["ContentType"] == "text/plain"
        assert "ContentDisposition" not in plain
        assert cache_status(plain) == expected_plain_status


# -- upload encodings ---------------------------------------------------------------------------


def test_boto3_put_object_with_checksum_header_arrives_byte_identical(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    # boto3 sends x-amz-checksum-crc32 and, for a body of 1 MiB or more, Expect: 100-continue.
    data = os.urandom(3 * MiB + 1)
    crc32 = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    put = s3.put_object(Bucket=bucket, Key="c", Body=data)
    assert put["ChecksumCRC32"] == crc32
    [record] = forwarded(shim, "PUT", f"/{bucket}/c")
    assert lower_keys(record.headers)["x-amz-checksum-crc32"] == crc32
    assert direct.get_object(Bucket=bucket, Key="c")["Body"].read() == data


def test_boto3_managed_upload_of_a_20_mib_file_arrives_byte_identical(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB)
    path = tmp_path / "twenty.bin"
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_file(str(path), bucket, "big/twenty.bin", Config=config)
    assert len(forwarded(shim, "PUT", f"/{bucket}/big/twenty.bin", "partNumber")) == 3
    assert direct.get_object(Bucket=bucket, Key="big/twenty.bin")["Body"].read() == data


def test_a_composite_checksum_is_never_passed_off_as_a_whole_object_checksum(
    s3: Any, direct: Any, bucket: str
) -> None:
    # boto3 asks for checksums (x-amz-checksum-mode: ENABLED) and validates a whole-object
    # checksum, but skips a COMPOSITE one ("<crc>-<parts>"), which is what a multipart upload
    # with per-part CRC32s has. moto's HEAD drops both the "-2" and x-amz-checksum-type, so a
    # proxy taking checksums from a HEAD would present the composite value as whole-object.
    parts = [os.urandom(8 * MiB), os.urandom(MiB + 3)]
    upload_id = direct.create_multipart_upload(
        Bucket=bucket, Key="composite", ChecksumAlgorithm="CRC32"
    )["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        answer = direct.upload_part(
            Bucket=bucket,
            Key="composite",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        done.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}
        )
    direct.complete_multipart_upload(
        Bucket=bucket, Key="composite", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    there = direct.get_object(Bucket=bucket, Key="composite")
    assert there["Body"].read() == b"".join(parts)
    assert (there["ChecksumCRC32"].endswith("-2"), there["ChecksumType"]) == (True, "COMPOSITE")
    through = s3.get_object(Bucket=bucket, Key="composite")
    assert through["Body"].read() == b"".join(parts)  # boto3 validated whatever was sent
    # A cold miss is fetched with ranged GETs, which carry no checksum, so s3tier may not know
    # it: it may leave the checksum out, but what it sends is the upstream's, type and all.
    if "ChecksumCRC32" in through:
        sent = (through["ChecksumCRC32"], through.get("ChecksumType"))
        assert sent == (there["ChecksumCRC32"], there["ChecksumType"])


class Unseekable(io.RawIOBase):
    """A body of unknown length: it can only be read, in pieces, once."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = iter(pieces)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = next(self._pieces, b"")
        buffer[: len(piece)] = piece
        return len(piece)


def test_boto3_put_object_of_unknown_length_arrives_byte_identical(
    proxy_server: S3TierServer, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    # boto3 refuses an unseekable body while it must hash it for the signature or a checksum;
    # without both, it sends the body with Transfer-Encoding: chunked.
    client = s3_client(
        proxy_server.url,
        request_checksum_calculation="when_required",
        s3={"payload_signing_enabled": False},
    )
    pieces = [os.urandom(100_000), b"middle", os.urandom(70_000)]
    client.put_object(Bucket=bucket, Key="stream", Body=Unseekable(pieces))
    assert direct.get_object(Bucket=bucket, Key="stream")["Body"].read() == b"".join(pieces)
    assert forwarded(shim, "PUT", f"/{bucket}/stream")


def test_a_chunked_upload_from_a_generator_arrives_byte_identical(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    # requests sends a generator body with Transfer-Encoding: chunked; s3tier runs with
    # --auth none, so the unsigned request is accepted.
    pieces = [os.urandom(64_000), b"", os.urandom(5), os.urandom(200_000)]

    def body() -> Iterator[bytes]:
        yield from pieces

    answer = requests.put(f"{proxy_server.url}/{bucket}/generated", data=body(), timeout=30)
    assert answer.status_code == 200
    assert direct.get_object(Bucket=bucket, Key="generated")["Body"].read() == b"".join(pieces)


# -- what s3tier sends upstream -----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, call",
    [
        ("PUT", lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"signed body")),
        ("GET", lambda s3, b: s3.list_objects_v2(Bucket=b)),
        ("GET", lambda s3, b: s3.get_object(Bucket=b, Key="k")),  # a cache miss
    ],
    ids=["forwarded-put", "forwarded-list", "cache-miss-get"],
)
def test_every_upstream_request_carries_a_signed_x_amz_content_sha256(
    s3: Any,
    direct: Any,
    shim: UpstreamShim,
    bucket: str,
    method: str,
    call: Callable[[Any, str], Any],
) -> None:
    # S3 rejects a SigV4 request without x-amz-content-sha256 ("Missing required header for
    # this request"); moto does not check, so the shim is where its absence shows.
    direct.put_object(Bucket=bucket, Key="k", Body=b"signed body")
    shim.clear()
    call(s3, bucket)
    records = [r for r in shim.matching(method) if r.path.startswith(f"/{bucket}")]
    assert records
    for record in records:
        headers = lower_keys(record.headers)
        assert "x-amz-content-sha256" in headers, record.path
        assert "x-amz-content-sha256" in headers["authorization"].split("SignedHeaders=")[1]
