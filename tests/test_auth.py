"""Client authentication: what real botocore signs verifies; each failure gets S3's answer.

Signed requests are captured as an HTTP server receives them: boto3 sends them to a recording
server on loopback, so the request target and headers are the bytes on the wire. Failures are
edits of such requests, each with the code (and the words) S3 answers with.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import http.client
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from proxy.auth import Grant, Keyring, Principal, Verified, verify
from proxy.canonical import amz_time
from proxy.errors import S3Error
from tests.harness import sign_as_of

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)
FIXED = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
NOW = FIXED.timestamp()
KEYRING = Keyring.from_mapping([{"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}])
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MINUTE = 60.0

KEYS = [
    "plain.txt",
    "with space.txt",
    "plus+sign",
    "100%.txt",
    "100%25.txt",
    "日本/語.txt",
    "a/../b",
    "a//b",
    "./x",
    "~!*'()$&=:@,;",
]


@dataclass(frozen=True)
class Received:
    """A request as the server got it: method, target bytes, lower-case headers."""

    method: str
    path: bytes
    query: bytes
    headers: dict[str, str]

    def verify(self, now: float = NOW, keyring: Keyring = KEYRING, **kw: Any) -> Verified:
        return verify(self.method, self.path, self.query, self.headers, keyring, now, **kw)

    def with_headers(self, **changes: str | None) -> Received:
        headers = {**self.headers, **{k.replace("_", "-"): v for k, v in changes.items()}}
        return replace(self, headers={k: v for k, v in headers.items() if v is not None})


# -- capturing what arrives --------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # answers Expect: 100-continue at once, as servers do

    def _record(self) -> None:
        target = self.path.encode("latin-1")  # http.server keeps the request target as sent
        path, _, query = target.partition(b"?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        self._read_body(headers)
        self.server.received.append(Received(self.command, path, query, headers))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self, headers: dict[str, str]) -> None:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                self.rfile.read(size + 2)
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
        else:
            self.rfile.read(int(headers.get("content-length", "0")))

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _record

    def log_message(self, *args: Any) -> None:
        pass


class Recorder:
    """A loopback HTTP server answering 200 to everything and keeping what it received."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        self.server.received = []  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def last(self) -> Received:
        return self.server.received[-1]  # type: ignore[attr-defined,no-any-return]

    def send(self, method: str, url: str, headers: dict[str, str] | None = None) -> Received:
        """Send a presigned URL as an HTTP client does: the target exactly as in the URL."""
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc, timeout=10)
        conn.request(method, f"{parts.path}?{parts.query}", headers=headers or {})
        conn.getresponse().read()
        conn.close()
        return self.last()


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    sign_as_of(monkeypatch, FIXED)


@functools.cache
def client(endpoint: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
    )


def signed(method: str, url: str, headers: dict[str, str] | None = None) -> Received:
    """Header-signed by botocore's S3 signer, as the wire would carry it (no network)."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    received = {k.lower(): v for k, v in prepared.headers.items()}
    return Received(
        method, parts.path.encode(), parts.query.encode(), received | {"host": parts.netloc}
    )


def presigned(method: str, url: str, expires: int = 300, region: str = "us-east-1") -> Received:
    request = AWSRequest(method=method, url=url)
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        S3SigV4QueryAuth(CREDS, "s3", region, expires=expires).add_auth(request)
    parts = urlsplit(request.prepare().url)
    return Received(method, parts.path.encode(), parts.query.encode(), {"host": parts.netloc})


# -- requests signed by real botocore verify -----------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("get_object", {"Range": "bytes=0-9"}),
        ("head_object", {}),
        ("put_object", {"Body": b"hello", "ContentType": "text/plain"}),
        ("delete_object", {}),
    ],
)
def test_boto3_requests_verify_as_the_server_receives_them(
    recorder: Recorder, operation: str, params: dict[str, Any], key: str
) -> None:
    getattr(client(recorder.endpoint), operation)(Bucket="bkt", Key=key, **params)
    received = recorder.last()
    assert received.path == b"/bkt/" + quote(key, safe="/~").encode()  # dot segments and all
    verified = received.verify()
    assert verified.principal.access_key == ACCESS_KEY
    assert verified.payload_hash == received.headers["x-amz-content-sha256"]


@pytest.mark.parametrize("prefix", ["a+b", "100%", "日本", "a b/c", "x=y&z"])
def test_boto3_listing_with_an_encoded_prefix_verifies(recorder: Recorder, prefix: str) -> None:
    client(recorder.endpoint).list_objects_v2(Bucket="bkt", Prefix=prefix, Delimiter="/")
    assert recorder.last().verify().principal.access_key == ACCESS_KEY


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("operation", "method", "params", "headers"),
    [
        ("get_object", "GET", {}, {}),
        ("get_object", "GET", {"ResponseContentType": "text/plain; charset=utf-8"}, {}),
        ("head_object", "HEAD", {}, {}),
        ("put_object", "PUT", {}, {}),
        ("put_object", "PUT", {"ContentType": "image/png"}, {"Content-Type": "image/png"}),
    ],
)
def test_boto3_presigned_urls_verify_as_the_server_receives_them(
    recorder: Recorder,
    operation: str,
    method: str,
    params: dict[str, str],
    headers: dict[str, str],
    key: str,
) -> None:
    url = client(recorder.endpoint, "eu-west-1").generate_presigned_url(
        operation, Params={"Bucket": "bkt", "Key": key, **params}, ExpiresIn=300
    )
    verified = recorder.send(method, url, headers).verify()
    assert verified.payload_hash == "UNSIGNED-PAYLOAD"
    assert verified.scope == "20261126/eu-west-1/s3/aws4_request"


def test_virtual_hosted_requests_verify() -> None:
    received = signed("GET", "http://bkt.s3.example.com:9000/dir/a%20b", {"Range": "bytes=0-1"})
    assert received.headers["host"] == "bkt.s3.example.com:9000"
    assert received.verify().principal.access_key == ACCESS_KEY


# The examples of the S3 API reference (sig-v4-header-based-auth.html, sigv4-streaming.html,
# sigv4-query-string-auth.html), signed by AWS with its example key.
AWS_KEYRING = Keyring.from_mapping(
    [
        {
            "access_key": "AKIAIOSFODNN7EXAMPLE",
            "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }
    ]
)
AWS_NOW = datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC).timestamp()
AWS_HOST = {"host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z"}
PUT_HEADERS = {
    "date": "Fri, 24 May 2013 00:00:00 GMT",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
}
CHUNKED_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "content-encoding": "aws-chunked",
    "content-length": "66824",
    "x-amz-decoded-content-length": "66560",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
}


def aws_authorization(signed_headers: str, signature: str) -> dict[str, str]:
    credential = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
    value = f"AWS4-HMAC-SHA256 Credential={credential},SignedHeaders={signed_headers},"
    return {"authorization": value + f"Signature={signature}"}


AWS_EXAMPLES = [
    pytest.param(
        "GET", b"/test.txt", b"",
        {**AWS_HOST, "range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256,
         **aws_authorization("host;range;x-amz-content-sha256;x-amz-date",
                             "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")},
        id="GET Object",
    ),
    *(
        pytest.param(
            "PUT", path, b"",
            {**AWS_HOST, **PUT_HEADERS,
             **aws_authorization("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                                 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")},
            id=f"PUT Object as {path.decode()}",
        )
        for path in (b"/test$file.text", b"/test%24file.text")
    ),
    pytest.param(
        "GET", b"/", b"lifecycle",
        {**AWS_HOST, "x-amz-content-sha256": EMPTY_SHA256,
         **aws_authorization("host;x-amz-content-sha256;x-amz-date",
                             "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")},
        id="GET Bucket Lifecycle",
    ),
    pytest.param(
        "GET", b"/", b"max-keys=2&prefix=J",
        {**AWS_HOST, "x-amz-content-sha256": EMPTY_SHA256,
         **aws_authorization("host;x-amz-content-sha256;x-amz-date",
                             "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")},
        id="GET Bucket (List Objects)",
    ),
    pytest.param(
        "PUT", b"/examplebucket/chunkObject.txt", b"",
        {**CHUNKED_HEADERS, "x-amz-date": "20130524T000000Z",
         **aws_authorization(
             "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
             "x-amz-decoded-content-length;x-amz-storage-class",
             "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")},
        id="PUT Object in chunks",
    ),
    pytest.param(
        "GET", b"/test.txt",
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
        b"us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
        b"X-Amz-SignedHeaders=host&X-Amz-Signature="
        b"aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        {"host": "examplebucket.s3.amazonaws.com"},
        id="presigned GET Object",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "query", "headers"), AWS_EXAMPLES)
def test_the_examples_of_the_aws_documentation_verify(
    method: str, path: bytes, query: bytes, headers: dict[str, str]
) -> None:
    verified = verify(method, path, query, headers, AWS_KEYRING, AWS_NOW)
    assert verified.scope == "20130524/us-east-1/s3/aws4_request"


def test_the_verified_request_carries_what_chunk_signatures_need() -> None:
    # The first chunk of the AWS streaming example: 65536 bytes of 'a', signed from the seed.
    method, path, query, headers = AWS_EXAMPLES[-2].values  # type: ignore[misc]
    verified = verify(method, path, query, headers, AWS_KEYRING, AWS_NOW)
    text = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            verified.amz_date,
            verified.scope,
            verified.seed_signature,
            EMPTY_SHA256,
            hashlib.sha256(b"a" * 65536).hexdigest(),
        ]
    )
    chunk = hmac.new(verified.signing_key, text.encode(), hashlib.sha256).hexdigest()
    assert chunk == "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    assert verified.payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def test_a_request_dated_by_the_date_header_alone_verifies() -> None:
    # botocore always sends x-amz-date, so sign with its pieces and an RFC 1123 Date instead.
    headers = {"Date": "Thu, 26 Nov 2026 12:00:00 GMT", "X-Amz-Content-SHA256": EMPTY_SHA256}
    request = AWSRequest(method="GET", url="http://127.0.0.1:8080/bkt/k", headers=headers)
    request.context["timestamp"] = "20261126T120000Z"
    signer = S3SigV4Auth(CREDS, "s3", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    scope = f"{ACCESS_KEY}/20261126/us-east-1/s3/aws4_request"
    authorization = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={names}, "
    received = Received(
        "GET",
        b"/bkt/k",
        b"",
        {"host": "127.0.0.1:8080", "date": headers["Date"], "x-amz-content-sha256": EMPTY_SHA256}
        | {"authorization": authorization + f"Signature={signature}"},
    )
    assert received.verify().amz_date == "20261126T120000Z"


GET = "http://127.0.0.1:8080/bkt/dir/file.txt?partNumber=1"


def upper_case_signature(received: Received) -> Received:
    authorization = received.headers["authorization"]
    return received.with_headers(authorization=authorization[:-64] + authorization[-64:].upper())


@pytest.mark.parametrize(
    ("request_", "now"),
    [
        pytest.param(signed("GET", GET), NOW + 14 * MINUTE, id="header form 14 minutes behind"),
        pytest.param(signed("GET", GET), NOW - 14 * MINUTE, id="header form 14 minutes ahead"),
        pytest.param(presigned("GET", GET, 300), NOW + 300, id="presigned at its last second"),
        pytest.param(presigned("GET", GET, 604800), NOW, id="presigned for seven days"),
        pytest.param(presigned("GET", GET), NOW - 14 * MINUTE, id="presigned 14 minutes early"),
        pytest.param(upper_case_signature(signed("GET", GET)), NOW, id="signature in upper case"),
        pytest.param(
            presigned("PUT", GET).with_headers(x_amz_content_sha256="UNSIGNED-PAYLOAD"),
            NOW,
            id="presigned with an unsigned x-amz-content-sha256",
        ),
    ],
)
def test_requests_within_the_rules_are_accepted(request_: Received, now: float) -> None:
    assert request_.verify(now).principal.access_key == ACCESS_KEY


# -- each failure gets S3's answer ----------------------------------------------------------------

OTHER_KEYRING = Keyring.from_mapping([{"access_key": ACCESS_KEY, "secret_key": "not-the-secret"}])
HEADER = signed("GET", GET, {"Range": "bytes=0-9"})
PRESIGNED = presigned("GET", GET)
AUTH = HEADER.headers["authorization"]
Edit = Callable[[Received], Received]


def header_auth(old: str, new: str) -> Edit:
    return lambda r: r.with_headers(authorization=r.headers["authorization"].replace(old, new, 1))


def query(old: bytes, new: bytes) -> Edit:
    return lambda r: replace(r, query=r.query.replace(old, new, 1))


def fails(
    name: str,
    request: Received,
    edit: Edit,
    code: str,
    words: str,
    now: float = NOW,
    keyring: Keyring = KEYRING,
) -> Any:
    return pytest.param(edit(request), now, keyring, code, words, id=name)


def same(received: Received) -> Received:
    return received


MISMATCH = ("SignatureDoesNotMatch", "does not match the signature you provided")
NOT_SIGNED = ("AccessDenied", "There were headers present in the request which were not signed")
BAD_CREDENTIAL = "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed"

FAILURES = [
    # Changes to what was signed.
    fails("a tampered header value", HEADER, lambda r: r.with_headers(range="bytes=0-99"),
          *MISMATCH),
    fails("a tampered path", HEADER, lambda r: replace(r, path=b"/bkt/dir/other.txt"), *MISMATCH),
    fails("a dot segment resolved away", signed("GET", "http://h/b/a/../k"),
          lambda r: replace(r, path=b"/b/k"), *MISMATCH),
    fails("a double slash merged", signed("GET", "http://h/b/a//k"),
          lambda r: replace(r, path=b"/b/a/k"), *MISMATCH),
    fails("a tampered query", HEADER, query(b"partNumber=1", b"partNumber=2"), *MISMATCH),
    fails("one more query parameter", HEADER,
          lambda r: replace(r, query=r.query + b"&versionId=v1"), *MISMATCH),
    fails("a plus where the signer meant a space", signed("GET", "http://h/b?prefix=a%20b"),
          query(b"%20", b"+"), *MISMATCH),
    fails("a signed header that is missing", HEADER, lambda r: r.with_headers(range=None),
          *MISMATCH),
    fails("the wrong secret", HEADER, same, *MISMATCH, keyring=OTHER_KEYRING),
    fails("a presigned URL with a longer X-Amz-Expires", PRESIGNED,
          query(b"Expires=300", b"Expires=3000"), *MISMATCH),
    fails("a presigned URL with another signature", PRESIGNED,
          lambda r: replace(r, query=r.query[:-64] + b"0" * 64), *MISMATCH),
    # Who is asking.
    fails("an unknown access key", HEADER, header_auth(ACCESS_KEY, "AKIDUNKNOWN"),
          "InvalidAccessKeyId", "does not exist in our records"),
    fails("a presigned URL with an unknown access key", PRESIGNED,
          query(ACCESS_KEY.encode(), b"AKIDUNKNOWN"),
          "InvalidAccessKeyId", "does not exist in our records"),
    fails("no Authorization and no presigned query", HEADER,
          lambda r: r.with_headers(authorization=None), "AccessDenied", "Access Denied"),
    fails("Signature Version 2", HEADER,
          lambda r: r.with_headers(authorization=f"AWS {ACCESS_KEY}:c2lnbmF0dXJl"),
          "InvalidRequest", "Please use AWS4-HMAC-SHA256"),
    fails("a Signature Version 2 presigned URL", HEADER,
          lambda r: replace(r.with_headers(authorization=None),
                            query=b"AWSAccessKeyId=AKIDEXAMPLE&Expires=1795664226&Signature=c2ln"),
          "InvalidRequest", "Please use AWS4-HMAC-SHA256"),
    fails("another scheme", HEADER, lambda r: r.with_headers(authorization="Bearer abc"),
          "InvalidRequest", "Unsupported Authorization Type"),
    fails("both an Authorization header and a presigned query", HEADER,
          lambda r: replace(r, query=PRESIGNED.query), "InvalidRequest", "Only one auth mechanism"),
    # The form of the Authorization header and its Credential.
    fails("a Credential of four parts", HEADER, header_auth("/us-east-1/", "/"),
          "AuthorizationHeaderMalformed",
          "The authorization header is malformed; the Credential is mal-formed"),
    fails("a Credential date of seven digits", HEADER, header_auth("/20261126/", "/2026112/"),
          "AuthorizationHeaderMalformed", 'incorrect date format "2026112"'),
    fails("a Credential for another service", HEADER, header_auth("/s3/", "/ec2/"),
          "AuthorizationHeaderMalformed", 'incorrect service "ec2"'),
    fails("a Credential with another terminator", HEADER,
          header_auth("aws4_request", "aws4_reques"),
          "AuthorizationHeaderMalformed", 'incorrect terminal "aws4_reques"'),
    fails("a Credential dated another day", HEADER, header_auth("/20261126/", "/20261125/"),
          "AuthorizationHeaderMalformed", 'Invalid credential date "20261125"'),
    fails("no Signature component", HEADER,
          lambda r: r.with_headers(authorization=AUTH.split(", Signature")[0]),
          "AuthorizationHeaderMalformed", "requires three components"),
    fails("no x-amz-content-sha256", HEADER, lambda r: r.with_headers(x_amz_content_sha256=None),
          "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"),
    fails("no x-amz-date and no Date", HEADER, lambda r: r.with_headers(x_amz_date=None),
          "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"),
    fails("an x-amz-date that is not ISO 8601 basic", HEADER,
          lambda r: r.with_headers(x_amz_date="2026-11-26T12:00:00Z"),
          "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"),
    # Headers the signature does not cover.
    fails("a Date that is not signed", HEADER,
          lambda r: r.with_headers(x_amz_date=None, date="Thu, 26 Nov 2026 12:00:00 GMT"),
          *NOT_SIGNED),
    fails("an x-amz header that is not signed", HEADER,
          lambda r: r.with_headers(x_amz_acl="public-read"), *NOT_SIGNED),
    fails("host not signed", HEADER, header_auth("SignedHeaders=host;", "SignedHeaders="),
          *NOT_SIGNED),
    fails("a presigned PUT with an x-amz header that is not signed", presigned("PUT", GET),
          lambda r: r.with_headers(x_amz_acl="public-read"), *NOT_SIGNED),
    # The presigned parameters.
    fails("a presigned URL without X-Amz-Signature", PRESIGNED,
          lambda r: replace(r, query=r.query.split(b"&X-Amz-Signature")[0]),
          "AuthorizationQueryParametersError", "requires the X-Amz-Algorithm, X-Amz-Credential"),
    fails("a presigned URL with another algorithm", PRESIGNED, query(b"HMAC-SHA256", b"HMAC-SHA1"),
          "AuthorizationQueryParametersError", "X-Amz-Algorithm only supports"),
    fails("a presigned URL with a long-format X-Amz-Date", PRESIGNED,
          query(b"X-Amz-Date=20261126T120000Z", b"X-Amz-Date=2026-11-26T12%3A00%3A00Z"),
          "AuthorizationQueryParametersError", "ISO8601 Long Format"),
    fails("a presigned URL with a Credential of four parts", PRESIGNED,
          query(b"%2Fus-east-1%2F", b"%2F"), "AuthorizationQueryParametersError", BAD_CREDENTIAL),
    fails("a presigned URL with X-Amz-Expires=604801", presigned("GET", GET, 604801), same,
          "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week"),
    fails("a presigned URL with X-Amz-Expires=-1", presigned("GET", GET, -1), same,
          "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative"),
    fails("a presigned URL with X-Amz-Expires=1h", PRESIGNED, query(b"Expires=300", b"Expires=1h"),
          "AuthorizationQueryParametersError", "X-Amz-Expires should be a number"),
    # Time.
    fails("a header form 16 minutes behind", HEADER, same,
          "RequestTimeTooSkewed", "difference between the request time", now=NOW + 16 * MINUTE),
    fails("a header form 16 minutes ahead", HEADER, same,
          "RequestTimeTooSkewed", "difference between the request time", now=NOW - 16 * MINUTE),
    fails("an expired presigned URL", PRESIGNED, same,
          "AccessDenied", "Request has expired", now=NOW + 301),
    fails("a presigned URL with X-Amz-Expires=0", presigned("GET", GET, 0), same,
          "AccessDenied", "Request has expired"),
    fails("a presigned URL dated 16 minutes in the future", PRESIGNED, same,
          "AccessDenied", "Request is not yet valid", now=NOW - 16 * MINUTE),
]  # fmt: skip


@pytest.mark.parametrize(("received", "now", "keyring", "code", "words"), FAILURES)
def test_each_failure_gets_the_answer_s3_gives(
    received: Received, now: float, keyring: Keyring, code: str, words: str
) -> None:
    with pytest.raises(S3Error) as caught:
        received.verify(now, keyring)
    assert caught.value.code == code, caught.value.message
    assert words in caught.value.message
    assert SECRET_KEY not in repr(caught.value.fields) + caught.value.message


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (HEADER, "AuthorizationHeaderMalformed",
         "The authorization header is malformed; the region 'us-east-1' is wrong; "
         "expecting 'eu-west-1'"),
        (PRESIGNED, "AuthorizationQueryParametersError",
         "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; "
         "expecting 'eu-west-1'"),
    ],
)  # fmt: skip
def test_a_region_other_than_the_expected_one_is_refused_naming_both(
    request_: Received, code: str, message: str
) -> None:
    with pytest.raises(S3Error) as caught:
        request_.verify(expected_region="eu-west-1")
    assert (caught.value.code, caught.value.message) == (code, message)
    assert caught.value.fields == {"Region": "eu-west-1"}


def test_any_region_is_accepted_when_none_is_expected() -> None:
    verified = presigned("GET", GET, region="ap-south-2").verify()
    assert verified.scope == "20261126/ap-south-2/s3/aws4_request"


def test_the_expected_region_is_accepted() -> None:
    assert HEADER.verify(expected_region="us-east-1").principal.access_key == ACCESS_KEY


def test_a_signature_mismatch_shows_the_strings_signed_here_and_never_the_secret() -> None:
    with pytest.raises(S3Error) as caught:
        HEADER.verify(keyring=OTHER_KEYRING)
    fields = caught.value.fields
    assert fields["AWSAccessKeyId"] == ACCESS_KEY
    assert fields["CanonicalRequest"].startswith("GET\n/bkt/dir/file.txt\npartNumber=1\n")
    assert fields["StringToSign"].startswith("AWS4-HMAC-SHA256\n20261126T120000Z\n")
    assert "not-the-secret" not in repr(fields) + caught.value.message


def test_an_unsigned_header_is_named_in_the_answer() -> None:
    with pytest.raises(S3Error) as caught:
        HEADER.with_headers(x_amz_meta_a="1", x_amz_acl="private").verify()
    assert caught.value.fields == {"HeadersNotSigned": "x-amz-acl, x-amz-meta-a"}


def test_an_expired_url_says_when_it_expired() -> None:
    with pytest.raises(S3Error) as caught:
        PRESIGNED.verify(NOW + 301)
    assert caught.value.fields == {
        "X-Amz-Expires": "300",
        "Expires": "2026-11-26T12:05:00Z",
        "ServerTime": "2026-11-26T12:05:01Z",
    }


def test_a_skewed_request_says_both_times_and_the_allowance() -> None:
    with pytest.raises(S3Error) as caught:
        HEADER.verify(NOW + 16 * MINUTE)
    assert caught.value.fields == {
        "RequestTime": "20261126T120000Z",
        "ServerTime": "2026-11-26T12:16:00Z",
        "MaxAllowedSkewMilliseconds": "900000",
    }


def test_a_bad_signature_is_reported_before_the_time() -> None:
    with pytest.raises(S3Error) as caught:
        HEADER.verify(NOW + 16 * MINUTE, OTHER_KEYRING)
    assert caught.value.code == "SignatureDoesNotMatch"


def test_the_derived_key_is_the_sigv4_chain_and_stays_out_of_the_repr() -> None:
    verified = HEADER.verify()
    key = f"AWS4{SECRET_KEY}".encode()
    for part in ("20261126", "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert verified.signing_key == key
    assert verified.seed_signature == AUTH[-64:]
    assert verified.amz_date == "20261126T120000Z"
    assert key.hex() not in repr(verified) and str(key) not in repr(verified)


# -- grants and the keyring -----------------------------------------------------------------------

READ_PHOTOS = Grant("photos", "public/", "read")
WRITE_UPLOADS = Grant("uploads", "", "read-write")
READ_ALL = Grant("*", "", "read")


@pytest.mark.parametrize(
    ("grants", "bucket", "key", "write", "allowed"),
    [
        (None, "any", "thing", True, True),
        ((), "photos", "public/a.jpg", False, False),
        ((READ_PHOTOS,), "photos", "public/a.jpg", False, True),
        ((READ_PHOTOS,), "photos", "public/", False, True),
        ((READ_PHOTOS,), "photos", "public/a.jpg", True, False),
        ((READ_PHOTOS,), "photos", "private/a.jpg", False, False),
        ((READ_PHOTOS,), "photos", "public", False, False),
        ((READ_PHOTOS,), "photos-2", "public/a.jpg", False, False),
        ((READ_PHOTOS,), "", "", False, False),
        ((WRITE_UPLOADS,), "uploads", "x/y", True, True),
        ((WRITE_UPLOADS,), "uploads", "", False, True),
        ((READ_ALL,), "anything", "k", False, True),
        ((READ_ALL,), "anything", "k", True, False),
        ((READ_ALL, WRITE_UPLOADS), "uploads", "k", True, True),
        ((READ_ALL, WRITE_UPLOADS), "photos", "k", True, False),
        ((Grant("*", "tmp/", "read-write"),), "b", "tmp/x", True, True),
        ((Grant("*", "tmp/", "read-write"),), "b", "etc/x", False, False),
    ],
)
def test_a_principal_is_allowed_what_its_grants_cover(
    grants: tuple[Grant, ...] | None, bucket: str, key: str, write: bool, allowed: bool
) -> None:
    assert Principal("AK", "SK", grants).allows(bucket, key, write) is allowed


def test_a_keyring_reads_entries_with_and_without_grants() -> None:
    keyring = Keyring.from_mapping(
        [
            {"access_key": "AK1", "secret_key": "S1"},
            {
                "access_key": "AK2",
                "secret_key": "S2",
                "grants": [
                    {"bucket": "photos", "prefix": "public/", "access": "read"},
                    {"bucket": "*", "access": "read-write"},
                ],
            },
            {"access_key": "AK3", "secret_key": "S3", "grants": []},
        ]
    )
    assert keyring.get("AK1") == Principal("AK1", "S1", None)
    assert keyring.get("AK2") == Principal("AK2", "S2", (READ_PHOTOS, Grant("*", "", "read-write")))
    assert keyring.get("AK3") == Principal("AK3", "S3", ())
    assert keyring.get("AK4") is None
    assert len(keyring) == 3


SECRET = "s3cr3t-never-shown"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"access_key": "AK"}, "keys: expected a list"),
        (["AK"], "keys[0]: expected a mapping"),
        ([{"secret_key": SECRET}], "keys[0]: missing access_key"),
        ([{"access_key": "AK"}], "keys[0]: missing secret_key"),
        ([{"access_key": "", "secret_key": SECRET}], "keys[0]: access_key must be a non-empty"),
        ([{"access_key": "A/K", "secret_key": SECRET}], "keys[0]: access_key must not contain"),
        ([{"access_key": "AK", "secret_key": 7}], "keys[0] (AK): secret_key must be"),
        ([{"access_key": "AK", "secret_key": SECRET, "grant": []}], "unknown field(s) grant"),
        ([{"access_key": "AK", "secret_key": SECRET, "grants": {}}], "(AK): grants must be a list"),
        (
            [{"access_key": "AK", "secret_key": SECRET, "grants": [{"bucket": "b"}]}],
            "keys[0] (AK).grants[0]: missing access",
        ),
        (
            [{"access_key": "AK", "secret_key": SECRET,
              "grants": [{"bucket": "b", "access": "write"}]}],
            "keys[0] (AK).grants[0]: access must be 'read' or 'read-write'",
        ),
        (
            [{"access_key": "AK", "secret_key": SECRET,
              "grants": [{"bucket": "b", "access": "read", "prefix": 1}]}],
            "grants[0]: prefix must be a string",
        ),
        (
            [{"access_key": "AK", "secret_key": SECRET,
              "grants": [{"bucket": "", "access": "read"}]}],
            "grants[0]: bucket must be a non-empty string",
        ),
        (
            [{"access_key": "AK", "secret_key": SECRET},
             {"access_key": "AK", "secret_key": SECRET}],
            "access key AK is listed twice",
        ),
    ],
)  # fmt: skip
def test_a_bad_keyring_entry_is_named_and_its_secret_is_not(raw: object, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        Keyring.from_mapping(raw)
    assert words in str(caught.value)
    assert SECRET not in str(caught.value)


def test_secrets_stay_out_of_reprs() -> None:
    principal = Principal("AK", SECRET, None)
    assert SECRET not in repr(principal)
    assert SECRET not in repr(Keyring([principal]))
    assert "AK" in repr(principal)


@pytest.mark.parametrize(
    ("text", "posix"),
    [
        ("20261126T120000Z", NOW),
        ("20240229T235959Z", datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=datetime.UTC)
         .timestamp()),
        ("20230229T000000Z", None),  # not a leap year
        ("20261126T120060Z", None),  # no leap seconds
        ("20261126T240000Z", None),
        ("20261301T000000Z", None),
        ("00000101T000000Z", None),
        ("20261126T120000", None),
        ("2026-11-26T12:00:00Z", None),
        ("\uff12\uff10\uff12\uff161126T120000Z", None),  # fullwidth digits: not ASCII ones
    ],
)  # fmt: skip
def test_an_amz_date_is_read_only_when_it_names_a_real_moment(
    text: str, posix: float | None
) -> None:
    assert amz_time(text) == posix


def test_signing_keys_are_kept_per_keyring_and_give_the_same_answers() -> None:
    keyring = Keyring.from_mapping([{"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}])
    first, again = HEADER.verify(keyring=keyring), HEADER.verify(keyring=keyring)
    assert first.signing_key == again.signing_key
    assert len(keyring.signing_keys) == 1
    assert SECRET_KEY not in repr(keyring)
