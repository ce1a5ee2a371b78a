"""Hostile clients (issue 7, §2.9): keys never alias or escape the disk folder, malformed requests
get a 4xx and never a 500 or a crash, and the request parsers only ever raise their documented
errors, whatever bytes arrive.

tests/test_keys_e2e.py already round-trips `a/../b`, `../x`, `./x`, `a//b`, `100%.txt` beside
`100%25.txt`, `+`, space, `?`, `#`, NFC/NFD, emoji and 1024/1025-byte keys; the keys here are the
spellings it does not try. Malformed requests are sent as raw bytes over a socket, since HTTP
client libraries refuse to send most of them. The property tests run the pure parsers on
arbitrary input; the live fuzz sends arbitrary requests to a real server.
"""

from __future__ import annotations

import os
import re
import string
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.asgi import header_map
from proxy.auth import Keyring, Principal, verify
from proxy.errors import S3Error
from proxy.mutations import delete_keys
from proxy.objects import first_block_hint
from proxy.preconditions import Preconditions, evaluate
from proxy.ranges import ByteRange, RangeNotSatisfiable, parse_range
from proxy.s3request import S3Request, object_path
from tests.fuzz_wire import RawAnswer, exchange
from tests.harness import MotoServer, S3TierServer, s3_client
from tests.upstream_shim import UpstreamShim

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hostile_shim(moto: MotoServer) -> Iterator[UpstreamShim]:
    """A shim of this module's own, that gives up on an upstream read after 3 s: moto leaves
    some malformed requests unanswered (a header it cannot encode), and the fuzz sends those."""
    shim = UpstreamShim(moto.url, read_timeout_s=3.0)
    shim.start()
    yield shim
    shim.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, hostile_shim: UpstreamShim
) -> Iterator[S3TierServer]:
    workdir = tmp_path_factory.mktemp("s3tier-hostile")
    server = S3TierServer(workdir, hostile_shim.url, "--upstream-read-timeout", "2")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def home(server: S3TierServer, moto: MotoServer) -> str:
    """A bucket with one known object, `known`, to check the server still serves."""
    direct = s3_client(moto.url)
    name = f"hostile-{os.urandom(4).hex()}"
    direct.create_bucket(Bucket=name)
    direct.put_object(Bucket=name, Key="known", Body=b"still serving")
    return name


def assert_still_serving(server: S3TierServer, bucket: str) -> None:
    assert server.proc is not None and server.proc.poll() is None, "the server process died"
    got = exchange(server.port, f"GET /{bucket}/known HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (got.status, got.body) == (200, b"still serving"), got


# -- keys ---------------------------------------------------------------------------------------

KEYS = [
    pytest.param("%", id="lone-percent"),
    pytest.param("%25", id="literal-percent-25"),
    pytest.param("%2F", id="literal-percent-2F"),
    pytest.param("a%2Fb", id="encoded-slash-literally"),
    pytest.param(".", id="only-dot"),
    pytest.param("a/./b", id="inner-dot-segment"),
    pytest.param("a/..", id="trailing-dot-dot"),
    pytest.param("../../../../../../etc/passwd", id="deep-traversal"),
    pytest.param("..\\..\\x", id="backslash-traversal"),
    pytest.param("/abs/olute", id="absolute-looking"),
    pytest.param("~/.ssh/id", id="tilde-home"),
    pytest.param("tab\there", id="tab"),
    pytest.param("\U0001f680" * 256, id="1024-bytes-of-4-byte-emoji"),
    pytest.param(unicodedata.normalize("NFD", "\u00c5ngstr\u00f6m/\u00e9"), id="nfd-path"),
]
LOOKALIKES = [
    pytest.param("%", "%25", id="percent-vs-percent-25"),
    pytest.param("a%2Fb", "a/b", id="literal-2F-vs-slash"),
    pytest.param("a/./b", "a/b", id="dot-segment-vs-resolved"),
    pytest.param("..\\x", "../x", id="backslash-vs-slash"),
    pytest.param("\u212b", "\u00c5", id="angstrom-sign-vs-a-ring"),  # NFC maps one to the other
]
# Every name s3tier itself gives a file in its disk folder: diskcache's hex names and its
# database, spool files. A key, which may hold any character, never becomes one of them.
CHOSEN_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def files_outside(root: Path, disk: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if disk not in (p, *p.parents)}


@dataclass
class KeysServer:
    """s3tier with its disk folder ten levels down in a folder of its own, so that a key that
    escaped by `..` (up to ten of them) would land where it can be seen, and the state of that
    folder, the working directory and the root before any key was written."""

    server: S3TierServer
    workdir: Path
    outside: set[str]
    repo: set[str]
    root: set[str]


@pytest.fixture(scope="module")
def keys_server(
    tmp_path_factory: pytest.TempPathFactory, shim: UpstreamShim
) -> Iterator[KeysServer]:
    workdir = tmp_path_factory.mktemp("s3tier-keys")
    disk = workdir.joinpath(*"abcdefghij", "disk")
    # --ram-bytes 0: every hit comes from the disk tier.
    server = S3TierServer(workdir, shim.url, "--ram-bytes", "0", "--disk-dir", str(disk))
    server.disk_dir = disk
    server.start()
    yield KeysServer(
        server, workdir, files_outside(workdir, disk), set(os.listdir(ROOT)), set(os.listdir("/"))
    )
    server.stop()


def body_for(key: str) -> bytes:
    return key.encode() + b"\n" + os.urandom(40_000)  # above 32 KiB: a file on disk


@pytest.mark.parametrize("key", KEYS)
def test_a_hostile_key_round_trips_exactly_through_the_disk_tier(
    keys_server: KeysServer, direct: Any, shim: UpstreamShim, bucket: str, key: str
) -> None:
    s3 = s3_client(keys_server.server.url)
    body = body_for(key)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert direct.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert [o["Key"] for o in direct.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    shim.clear()
    for _ in range(2):  # from the write-through copy, then again
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    asked = {r.path.partition("?")[0] for r in shim.requests if f"/{bucket}/" in r.path}
    assert asked <= {f"/{bucket}/{quote(key, safe='/~')}"}


@pytest.mark.parametrize(("first", "second"), LOOKALIKES)
def test_lookalike_hostile_keys_never_share_an_answer(
    keys_server: KeysServer, direct: Any, bucket: str, first: str, second: str
) -> None:
    s3 = s3_client(keys_server.server.url)
    bodies = {first: body_for(first), second: body_for(second)}
    for key, body in bodies.items():
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    for _ in ("cold", "cached"):
        for key, body in bodies.items():
            assert (key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == (key, body)


def test_no_hostile_key_left_a_file_outside_the_disk_folder_or_named_after_itself(
    keys_server: KeysServer,
) -> None:
    # Runs after the key tests above (file order), over everything they wrote.
    server = keys_server.server
    server.stop()  # nothing moves under the walks below
    assert files_outside(keys_server.workdir, server.disk_dir) == keys_server.outside
    assert set(os.listdir(ROOT)) == keys_server.repo, "a file appeared in the working directory"
    assert set(os.listdir("/")) == keys_server.root, "a file appeared at the root"
    disk = server.disk_dir.resolve()
    found = [Path(where, name) for where, dirs, files in os.walk(disk) for name in dirs + files]
    assert len([p for p in found if p.is_file()]) > len(KEYS), "the blocks should be on disk"
    for path in found:
        assert path.resolve().is_relative_to(disk), path
        assert CHOSEN_NAME.fullmatch(path.name), f"a key became a file name: {path}"


# -- malformed requests -------------------------------------------------------------------------

BIG = b"a" * (64 << 10)
MALFORMED: list[Any] = [
    # (id, request, allowed statuses, whether the proxy's own S3 XML is expected)
    ("range-not-a-number", b"GET {k} HTTP/1.1\r\nHost: x\r\nRange: bytes=abc\r\n\r\n", {200}, 0),
    ("range-past-any-size", b"GET {k} HTTP/1.1\r\nHost: x\r\nRange: bytes=" + b"9" * 5000
     + b"-\r\n\r\n", {416}, 1),
    ("range-latin-1-bytes", b"GET {k} HTTP/1.1\r\nHost: x\r\nRange: bytes=\xff\xfe-\r\n\r\n",
     {200}, 0),
    ("range-a-thousand-ranges", b"GET {k} HTTP/1.1\r\nHost: x\r\nRange: bytes="
     + b",".join(b"%d-%d" % (i, i) for i in range(1000)) + b"\r\n\r\n", {200}, 0),
    ("range-double-minus", b"GET {k} HTTP/1.1\r\nHost: x\r\nRange: bytes=--5\r\n\r\n", {200}, 0),
    ("if-modified-since-not-a-date",
     b"GET {k} HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: yesterday\r\n\r\n", {200}, 0),
    ("if-unmodified-since-impossible-date",
     b"GET {k} HTTP/1.1\r\nHost: x\r\nIf-Unmodified-Since: Mon, 32 Jan 2001 25:61:61 GMT\r\n\r\n",
     {200}, 0),
    ("if-unmodified-since-year-overflow",
     b"GET {k} HTTP/1.1\r\nHost: x\r\nIf-Unmodified-Since: Mon, 01 Jan 99999999999 00:00:00 GMT"
     b"\r\n\r\n", {200}, 0),
    ("if-modified-since-latin-1-bytes",
     b"GET {k} HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: \xff\xfe\x80\r\n\r\n", {200}, 0),
    ("if-none-match-lone-quote", b"GET {k} HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"\r\n\r\n",
     {200}, 0),
    ("request-line-of-64-kib", b"GET {k}" + BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400, 414}, 0),
    # S3 refuses a header section over 8 KiB with 400 (RequestHeaderSectionTooLarge).
    ("header-value-of-64-kib", b"GET {k} HTTP/1.1\r\nHost: x\r\nX-Big: " + BIG + b"\r\n\r\n",
     {400, 431}, 0),
    ("five-thousand-header-lines", b"GET {k} HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n", {400, 431}, 0),
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with two,
    # or with one whose value is not a valid host.
    ("http-1.1-without-host", b"GET {k} HTTP/1.1\r\n\r\n", {400}, 0),
    ("two-host-headers", b"GET {k} HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
     {400}, 0),
    ("host-unclosed-ipv6", b"GET {k} HTTP/1.1\r\nHost: [::1\r\n\r\n", {400}, 0),
    ("host-with-a-space", b"GET {k} HTTP/1.1\r\nHost: a b\r\n\r\n", {400}, 0),
    ("host-latin-1-bytes", b"GET /known HTTP/1.1\r\nHost: \xff\xfe.localhost\r\n\r\n",
     {400, 403, 404}, 0),
    ("host-empty-bucket-label", b"GET /known HTTP/1.1\r\nHost: .localhost\r\n\r\n",
     {400, 403, 404}, 0),
    ("host-300-character-bucket", b"GET /known HTTP/1.1\r\nHost: " + b"a" * 300
     + b".localhost\r\n\r\n", {400, 403, 404}, 0),
    # Methods S3 does not have: 405 MethodNotAllowed from the proxy, never forwarded.
    ("method-brew", b"BREW {k} HTTP/1.1\r\nHost: x\r\n\r\n", {400, 405}, 0),
    ("method-propfind", b"PROPFIND {k} HTTP/1.1\r\nHost: x\r\n\r\n", {405}, 1),
    ("method-patch", b"PATCH {k} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {405}, 1),
    ("method-trace", b"TRACE {k} HTTP/1.1\r\nHost: x\r\n\r\n", {405}, 1),
    ("method-mkcol", b"MKCOL {k} HTTP/1.1\r\nHost: x\r\n\r\n", {405}, 1),
    ("method-connect", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n", {400, 405}, 0),
    ("method-lower-case", b"get {k} HTTP/1.1\r\nHost: x\r\n\r\n", {400, 405}, 0),
    ("query-garbage", b"GET {k}?%%%&&==&x=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", {200, 400}, 0),
    ("query-invalid-utf-8-on-bucket", b"GET {b}?%ff%fe=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
     {200, 400}, 0),
    ("path-invalid-percent-escape", b"GET {b}/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}, 0),
    ("path-lone-percent", b"GET {b}/% HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}, 0),
    ("path-percent-encoded-invalid-utf-8", b"GET {b}/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
     {400}, 1),
    ("path-raw-invalid-utf-8", b"GET {b}/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", {400}, 0),
    ("path-raw-nul", b"GET {b}/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", {400}, 0),
    ("path-percent-encoded-nul", b"GET {b}/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}, 0),
    ("header-with-nul", b"GET {k} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}, 0),
    ("target-asterisk", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", {400}, 0),
    ("target-relative", b"GET known HTTP/1.1\r\nHost: x\r\n\r\n", {400}, 0),
    ("content-length-not-a-number", b"PUT {b}/new HTTP/1.1\r\nHost: x\r\nContent-Length: abc"
     b"\r\n\r\n", {400}, 0),
    ("content-length-negative", b"PUT {b}/new HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
     {400}, 0),
    ("content-length-and-chunked", b"PUT {b}/new HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}, 0),
    ("chunked-body-not-hex", b"PUT {b}/new HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
     b"\r\n\r\nzz\r\n", {400}, 0),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64))
     + b"\r\n\r\n", {0, 400}, 0),
    ("admin-path-invalid-utf-8", b"GET /_s3tier/%ff HTTP/1.1\r\nHost: x\r\n\r\n", {404}, 0),
]  # fmt: skip


def is_own_xml(answer: RawAnswer) -> bool:
    """An error document the proxy wrote itself: its RequestId is the one in its header."""
    request_id = answer.header("x-amz-request-id") or "-"
    return (
        answer.body.startswith(b"<?xml")
        and b"<Code>" in answer.body
        and f"<RequestId>{request_id}</RequestId>".encode() in answer.body
    )


@pytest.mark.parametrize(
    ("request_bytes", "allowed", "own_xml"),
    [pytest.param(raw, allowed, bool(xml), id=name) for name, raw, allowed, xml in MALFORMED],
)
def test_a_malformed_request_gets_a_4xx_never_a_500_and_the_server_stays_up(
    server: S3TierServer,
    home: str,
    hostile_shim: UpstreamShim,
    request_bytes: bytes,
    allowed: set[int],
    own_xml: bool,
) -> None:
    raw = request_bytes.replace(b"{k}", f"/{home}/known".encode()).replace(
        b"{b}", f"/{home}".encode()
    )
    hostile_shim.clear()
    got = exchange(server.port, raw)
    assert got.status in allowed, (got.status, got.head[:200], got.body[:300])
    if own_xml:
        assert is_own_xml(got), got.body[:300]
    if got.status in (405,):
        assert hostile_shim.requests == [], "an unknown method was forwarded upstream"
    assert_still_serving(server, home)


# -- the pure parsers, on arbitrary input -------------------------------------------------------

header_names = st.sampled_from(
    [
        "host", "range", "if-match", "if-none-match", "if-modified-since",
        "if-unmodified-since", "authorization", "x-amz-date", "date", "x-amz-content-sha256",
        "x-amz-checksum-mode", "x-amz-security-token", "content-length",
        "x-amz-server-side-encryption-customer-algorithm", "x-amz-request-payer",
    ]
)  # fmt: skip
latin1 = st.text(st.characters(max_codepoint=255), max_size=80)
header_maps = st.dictionaries(header_names | st.text(max_size=10), latin1 | st.text(), max_size=8)
percent_paths = st.lists(
    st.sampled_from(["/", "%", "%2", "%2F", "%25", "%ff", "%C3%A9", "..", ".", "a", "~", "\x00"])
    | st.text(max_size=4),
    max_size=12,
).map(lambda parts: ("/" + "".join(parts)).encode("utf-8", "surrogatepass"))


@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE"]) | st.text(max_size=10),
    raw_path=st.binary(max_size=200) | percent_paths,
    query=st.binary(max_size=200),
    headers=header_maps,
    base_domain=st.sampled_from(["localhost", "", "s3.example.com"]) | st.text(max_size=20),
)
def test_parsing_any_request_raises_nothing_but_an_s3_error(
    method: str, raw_path: bytes, query: bytes, headers: dict[str, str], base_domain: str
) -> None:
    try:
        req = S3Request.parse(method, raw_path, query, headers, base_domain)
    except S3Error as error:
        assert 400 <= error.status < 500
        return
    assert req.resource.startswith("/")
    assert req.cacheable <= req.is_object_read


@given(
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.\-]{2,20}", fullmatch=True),
    key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
)
def test_the_upstream_path_of_any_key_parses_back_to_that_very_key(bucket: str, key: str) -> None:
    # No alias: what the proxy sends upstream names exactly the key the client asked for.
    path = object_path(bucket, key).encode()
    req = S3Request.parse("GET", path, b"", {"host": "127.0.0.1"}, "localhost")
    assert (req.bucket, req.key) == (bucket, key)


@given(header=st.text(max_size=60) | latin1, size=st.integers(0, 2**70))
def test_any_range_header_is_a_range_inside_the_object_none_or_not_satisfiable(
    header: str, size: int
) -> None:
    try:
        outcome = parse_range(header, size)
    except RangeNotSatisfiable as error:
        assert error.size == size
        return
    assert outcome is None or (
        isinstance(outcome, ByteRange) and 0 <= outcome.start <= outcome.end < size
    )


@given(header=st.text(max_size=60) | latin1, block_size=st.integers(1, 2**26))
def test_the_first_block_of_any_range_header_is_a_block_index_or_none(
    header: str, block_size: int
) -> None:
    hint = first_block_hint(header, block_size)
    assert hint is None or hint >= 0


@given(
    headers=header_maps,
    etag=st.text(max_size=40),
    last_modified=st.none() | st.integers(-(2**40), 2**40),
)
def test_any_conditional_headers_are_evaluated_without_raising(
    headers: Mapping[str, str], etag: str, last_modified: int | None
) -> None:
    evaluate(Preconditions.from_headers(headers), etag, last_modified)


@given(st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=60)), max_size=10))
def test_any_raw_header_list_maps_to_names_and_values(raw: list[tuple[bytes, bytes]]) -> None:
    assert set(header_map(raw)) == {name.decode("latin-1").lower() for name, _ in raw}


@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_delete_objects_body_yields_keys_or_nothing(body: bytes) -> None:
    assert isinstance(delete_keys(body), list)


KEYRING = Keyring([Principal("AKIDEXAMPLE", "secret", None)])
credential = st.sampled_from(
    [
        "AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request",
        "AKIDEXAMPLE/2024/us-east-1/s3/aws4_request",
        "AKIDEXAMPLE//us-east-1//",
        "OTHER/20240101/us-east-1/s3/aws4_request",
        "",
    ]
) | st.text(max_size=60)
authorization = (
    st.builds(
        lambda scheme, cred, signed, sig, junk: (
            f"{scheme} Credential={cred}, SignedHeaders={signed}, Signature={sig}{junk}"
        ),
        st.sampled_from(["AWS4-HMAC-SHA256", "AWS", "aws4-hmac-sha256", ""]) | st.text(max_size=20),
        credential,
        st.sampled_from(
            ["host;x-amz-date", "host", "", ";;", "host;x-amz-content-sha256;x-amz-date"]
        )
        | st.text(max_size=30),
        st.text(string.hexdigits, max_size=70),
        st.sampled_from(["", ",", ", Foo=bar", ",,,="]) | st.text(max_size=10),
    )
    | latin1
)
presigned_query = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId", "Signature",
                "X-Amz-Security-Token",
            ]
        ) | st.text(max_size=8),
        st.text(max_size=40) | credential,
    ),
    max_size=8,
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode())  # fmt: skip


@settings(max_examples=300)
@given(
    method=st.sampled_from(["GET", "PUT", "HEAD"]),
    raw_path=st.binary(max_size=60) | percent_paths,
    query=presigned_query | st.binary(max_size=100),
    auth=st.none() | authorization,
    amz_date=st.none() | st.sampled_from(["20240101T000000Z", "2024", ""]) | latin1,
    payload=st.none() | st.sampled_from(["UNSIGNED-PAYLOAD", "", "e3b0"]) | latin1,
    now=st.floats(0, 2e10),
)
def test_verifying_any_signature_raises_nothing_but_an_s3_error(
    method: str,
    raw_path: bytes,
    query: bytes,
    auth: str | None,
    amz_date: str | None,
    payload: str | None,
    now: float,
) -> None:
    headers = {"host": "127.0.0.1"}
    for name, value in (
        ("authorization", auth),
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload),
    ):
        if value is not None:
            headers[name] = value
    with pytest.raises(S3Error):  # nothing here is correctly signed
        verify(method, raw_path, query, headers, KEYRING, now, expected_region="us-east-1")


# -- the live server, fuzzed --------------------------------------------------------------------

# Nine requests in ten use one of S3's methods (plus WebDAV's and a made-up one), so most of
# them reach the application rather than the HTTP parser.
s3_methods = st.sampled_from(
    ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PROPFIND", "BREW"]
)
junk_methods = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
methods = st.integers(0, 9).flatmap(lambda n: junk_methods if n == 0 else s3_methods)
key_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
)
query_pairs = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "list-type", "max-keys", "prefix", "delimiter", "partNumber", "versionId",
                "uploadId", "uploads", "acl", "tagging", "delete", "response-content-type",
                "x-id", "continuation-token", "X-Amz-Signature",
            ]
        ) | st.text(string.ascii_letters, max_size=6),
        st.text(max_size=12),
    ),
    max_size=4,
)  # fmt: skip
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=60
)


@st.composite
def live_requests(draw: st.DrawFn, bucket: str) -> bytes:
    method = draw(methods)
    where = draw(st.sampled_from(["object", "bucket", "service", "raw"]))
    if where == "object":
        target = f"/{bucket}/{quote(draw(key_text), safe=draw(st.sampled_from(['/', '/%', ''])))}"
    elif where == "bucket":
        target = f"/{bucket}"
    elif where == "service":
        target = "/"
    else:
        target = "/" + draw(st.text(string.printable.strip(), max_size=40)).replace(" ", "")
    pairs = draw(query_pairs)
    if pairs:
        target += "?" + "&".join(f"{k}={quote(v)}" if v else k for k, v in pairs)
    headers = draw(st.dictionaries(header_names, header_values, max_size=5))
    headers.pop("content-length", None)
    body = draw(st.binary(max_size=64)) if method in ("PUT", "POST") else b""
    lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name != "host"]
    if body or method in ("PUT", "POST"):
        lines.append(f"content-length: {len(body)}")
    lines.append("connection: close")
    return "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n" + body


def upstream_failed(shim: UpstreamShim) -> bool:
    """Whether the upstream itself answered 5xx, or not at all, to something s3tier sent."""
    return any(r.status >= 500 or r.status == 0 for r in list(shim.requests))


def test_fuzzing_the_live_server_never_gets_a_500_of_its_own_nor_kills_it(
    server: S3TierServer, home: str, hostile_shim: UpstreamShim, direct: Any
) -> None:
    fuzz_bucket = f"fuzz-{os.urandom(4).hex()}"
    direct.create_bucket(Bucket=fuzz_bucket)
    direct.put_object(Bucket=fuzz_bucket, Key="object", Body=b"x" * 5000)
    own_500s: list[tuple[bytes, int, bytes]] = []

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(live_requests(fuzz_bucket))
    def one_request(raw: bytes) -> None:
        hostile_shim.clear()
        started = time.monotonic()
        got = exchange(server.port, raw, timeout_s=15)
        assert got.ending != "timeout", (raw[:300], time.monotonic() - started)
        # Give the shim a moment to record the upstream's answer (it lands after ours).
        if got.status >= 500 and not upstream_failed(hostile_shim):
            time.sleep(0.2)
        if got.status >= 500 and not upstream_failed(hostile_shim):
            own_500s.append((raw[:300], got.status, got.body[:300]))
        assert server.proc is not None and server.proc.poll() is None, raw[:300]

    one_request()
    assert own_500s == [], "s3tier answered 5xx while the upstream had not failed"
    assert_still_serving(server, home)
    log = server.log_text()
    assert "Traceback" not in log, log[log.find("Traceback") :][:3000]
