"""Keys are opaque, end to end: every key round-trips exactly through s3tier, cold and cached,
in both directions, and two different keys never share an answer however alike they look.

boto3 sends all of these keys as they are (it percent-encodes every byte outside the
unreserved set and '/', and normalises nothing), so no raw request is needed to deliver them;
the raw-path tests at the end check the decoding of spellings boto3 never produces.
"""

from __future__ import annotations

import http.client
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.harness import S3TierServer
from tests.upstream_shim import UpstreamShim

NFC_E = unicodedata.normalize("NFC", "caf\u00e9")  # one code point, U+00E9
NFD_E = unicodedata.normalize("NFD", "caf\u00e9")  # 'e' then U+0301 COMBINING ACUTE ACCENT
KEYS = [
    pytest.param("a/../b", id="dot-dot-segment"),
    pytest.param("../x", id="leading-dot-dot"),
    pytest.param("./x", id="leading-dot"),
    pytest.param("..", id="only-dot-dot"),
    pytest.param("a//b", id="double-slash"),
    pytest.param("/lead", id="leading-slash"),
    pytest.param("a b", id="space"),
    pytest.param("a+b", id="plus"),
    pytest.param("100%.txt", id="percent"),
    pytest.param("100%25.txt", id="percent-25"),
    pytest.param("trailing/", id="trailing-slash"),
    pytest.param("naïve/ключ/日本.txt", id="unicode"),
    pytest.param(NFC_E, id="nfc"),
    pytest.param(NFD_E, id="nfd"),
    pytest.param("🙂/🚀 launch.txt", id="emoji"),
    pytest.param("what?.txt", id="question-mark"),
    pytest.param("a#b", id="hash"),
    pytest.param("x=1&y=2;z", id="query-like"),
    pytest.param("k" * 1024, id="1024-ascii-bytes"),
    pytest.param("é" * 512, id="1024-utf8-bytes"),
]
# Pairs that a careless proxy would fold into one cache entry or one upstream path.
LOOKALIKES = [
    pytest.param("100%.txt", "100%25.txt", id="percent-vs-encoded-percent"),
    pytest.param(NFC_E, NFD_E, id="nfc-vs-nfd"),
    pytest.param("a/../b", "b", id="dot-dot-vs-resolved"),
    pytest.param("./x", "x", id="dot-vs-resolved"),
    pytest.param("a//b", "a/b", id="double-vs-single-slash"),
    pytest.param("a b", "a+b", id="space-vs-plus"),
    pytest.param("a b", "a%20b", id="space-vs-encoded-space"),
    pytest.param("trailing/", "trailing", id="trailing-slash-vs-none"),
    pytest.param("Key", "key", id="case"),
]
# diskcache names every value file itself (two hex levels, then a random hex name), and an
# upload waiting for the upstream spools under a name tempfile chose.
S3TIER_FILE = re.compile(
    r"cache/cache\.db(-wal|-shm|-journal)?|cache/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val"
    r"|spool/s3tier-spool-\w+|s3tier-clean-shutdown|s3tier-layout"
)
BODY_FILLER_BYTES = 40_000  # above diskcache's 32 KiB: blocks are stored as files, not rows


def body_for(key: str) -> bytes:
    """A body unique to the key and large enough to be a file in the disk tier."""
    return key.encode() + b"\n" + os.urandom(BODY_FILLER_BYTES)


def cache_status(response: dict[str, Any]) -> str:
    return response["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"]  # type: ignore[no-any-return]


def upstream_path(bucket: str, key: str) -> str:
    return f"/{bucket}/{quote(key, safe='/~')}"


def tree(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in (p, *p.parents)}


@pytest.fixture(autouse=True)
def no_file_outside_the_disk_folder(proxy_server: S3TierServer) -> Iterator[None]:
    """Whatever a test does with keys, s3tier creates files only in its disk folder, and only
    with names it chose itself: a key never becomes a path."""
    disk = proxy_server.disk_dir
    root = disk.parent.parent  # the session's temp folder: moto's and s3tier's work folders
    before = tree(root, disk)
    yield
    assert tree(root, disk) == before
    stored = [str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file()]
    assert [name for name in stored if not S3TIER_FILE.fullmatch(name)] == []


@pytest.mark.parametrize("key", KEYS)
def test_key_written_upstream_reads_back_through_the_proxy_cold_then_cached(
    s3: Any, direct: Any, shim: UpstreamShim, bucket: str, key: str
) -> None:
    body = body_for(key)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    cold = s3.get_object(Bucket=bucket, Key=key)
    assert (cold["Body"].read(), cache_status(cold)) == (body, "MISS")
    cached = s3.get_object(Bucket=bucket, Key=key)
    assert (cached["Body"].read(), cache_status(cached)) == (body, "HIT-RAM")
    # The proxy asked the upstream for this very key, not a normalised spelling of it.
    asked = {r.path.partition("?")[0] for r in shim.matching("GET") if f"/{bucket}/" in r.path}
    assert asked == {upstream_path(bucket, key)}


@pytest.mark.parametrize("key", KEYS)
def test_key_written_through_the_proxy_reads_back_from_the_upstream(
    s3: Any, direct: Any, bucket: str, key: str
) -> None:
    body = body_for(key)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert direct.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert [item["Key"] for item in direct.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


@pytest.mark.parametrize("first, second", LOOKALIKES)
def test_lookalike_keys_each_return_their_own_body_cold_and_cached(
    s3: Any, direct: Any, bucket: str, first: str, second: str
) -> None:
    bodies = {first: body_for(first), second: body_for(second)}
    for key, body in bodies.items():
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    for expected_status in ("MISS", "HIT-RAM"):
        for key, body in bodies.items():
            got = s3.get_object(Bucket=bucket, Key=key)
            assert (key, got["Body"].read(), cache_status(got)) == (key, body, expected_status)


def test_a_1025_byte_key_gets_whatever_the_upstream_answers(
    s3: Any, direct: Any, bucket: str
) -> None:
    # S3 refuses keys over 1024 bytes (KeyTooLongError); moto does not. Either way, s3tier
    # passes the upstream's answer on rather than deciding for it.
    key = "k" * 1025

    def outcome(client: Any, body: bytes) -> tuple[str, bytes | str]:
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body)
            return "stored", direct.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            return "refused", exc.response["Error"]["Code"]

    there = outcome(direct, b"direct")
    through = outcome(s3, b"through")
    assert through == (there[0], b"through" if there[0] == "stored" else there[1])
    if there[0] == "stored":
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == b"through"


# -- raw paths, spellings boto3 never sends -------------------------------------------------


def raw_get(server: S3TierServer, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)  # s3tier runs with --auth none: unsigned is fine
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_raw_path_is_percent_decoded_exactly_once(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="100%.txt", Body=b"percent")
    direct.put_object(Bucket=bucket, Key="100%25.txt", Body=b"encoded percent")
    for _ in ("cold", "cached"):
        assert raw_get(proxy_server, f"/{bucket}/100%25.txt") == (200, b"percent")
        assert raw_get(proxy_server, f"/{bucket}/100%2525.txt") == (200, b"encoded percent")


def test_equivalent_percent_encodings_name_the_same_key(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    # RFC 3986 §2.1 and §6.2.2.2: hex digits are case-insensitive and an encoded unreserved
    # character is that character. The key is what the bytes decode to, whatever the spelling.
    direct.put_object(Bucket=bucket, Key=NFC_E + "/a~b", Body=b"one key")
    spellings = ["caf%C3%A9/a~b", "caf%c3%a9/a%7Eb", "%63af%C3%A9%2Fa~b"]
    for spelling in spellings:
        path = f"/{bucket}/{spelling}"
        assert (spelling, raw_get(proxy_server, path)) == (spelling, (200, b"one key"))
