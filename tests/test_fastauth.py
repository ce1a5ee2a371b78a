"""The fast path's SigV4 check agrees with the full path's: True only where `verify` and
`authorize` both let a header-signed object read through, False everywhere else.

Requests are signed by botocore's own S3 signer (as of a frozen clock) and then edited; each
case states what fast_verify answers, and the test also checks that answer against what the
full path (`header_map` → `S3Request.parse` → `verify` → `authorize`) decides for the same
bytes, so a case can never pass with the two disagreeing.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proxy.access import authorize
from proxy.asgi import header_map
from proxy.auth import Grant, Keyring, Principal, verify
from proxy.canonical import SigningKeys, signing_key
from proxy.errors import S3Error
from proxy.fastauth import fast_verify
from proxy.s3request import S3Request
from tests.harness import sign_as_of

FULL = ("AKIDFASTFULL00000001", "fast-full-secret-000000000000000000000001")
READER = ("AKIDFASTREAD00000002", "fast-read-secret-000000000000000000000002")
FIXED = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
NOW = FIXED.timestamp()
MINUTE = 60.0
REGION = "us-east-1"
BASE_DOMAIN = "localhost"
KEYRING = Keyring(
    [
        Principal(*FULL, None),
        Principal(*READER, (Grant("assets", "public/", "read"),)),
    ]
)
WRONG_SECRET = Keyring([Principal(FULL[0], "not-the-secret", None)])
SDK_HEADERS = {
    "User-Agent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux lang/python#3.12",
    "amz-sdk-invocation-id": "8c3c6b5e-0f4a-4b7e-9a43-3c1c1b9e7f10",
    "amz-sdk-request": "attempt=1",
}


@dataclass(frozen=True)
class Wire:
    """A request as the protocol sees it: method, target and header list, all bytes."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    def set(self, name: str, value: str | None) -> Wire:
        kept = tuple((n, v) for n, v in self.headers if n != name.encode())
        added = () if value is None else ((name.encode(), value.encode()),)
        return replace(self, headers=kept + added)

    def header(self, name: str) -> str:
        return next(v.decode() for n, v in self.headers if n == name.encode())


def signed(
    method: str,
    url: str,
    key: tuple[str, str] = FULL,
    region: str = REGION,
    headers: dict[str, str] | None = None,
) -> Wire:
    """Header-signed by botocore's S3 signer, with a boto3 client's usual headers."""
    request = AWSRequest(method=method, url=url, headers={**SDK_HEADERS, **(headers or {})})
    S3SigV4Auth(Credentials(*key), "s3", region).add_auth(request)
    parts = urlsplit(request.prepare().url)
    sent = [(b"host", parts.netloc.encode())]
    sent += [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return Wire(method.encode(), target.encode(), tuple(sent))


def presigned(method: str, url: str) -> Wire:
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(Credentials(*FULL), "s3", REGION, expires=300).add_auth(request)
    parts = urlsplit(request.prepare().url)
    target = f"{parts.path}?{parts.query}".encode()
    return Wire(method.encode(), target, ((b"host", parts.netloc.encode()),))


def full_path_accepts(wire: Wire, keyring: Keyring, now: float) -> bool:
    """What the full path decides: the same steps `proxy.app` takes, in its order."""
    fields = header_map(wire.headers)
    path, _, query = wire.target.partition(b"?")
    method = wire.method.decode()
    try:
        req = S3Request.parse(method, path, query, fields, BASE_DOMAIN)
        verified = verify(method, path, query, fields, keyring, now, expected_region=REGION)
        authorize(req, fields, verified.principal)
    except S3Error:
        return False
    return True


def fast(wire: Wire, keyring: Keyring, now: float) -> bool:
    path, _, query = wire.target.partition(b"?")
    req = S3Request.parse(wire.method.decode(), path, query, header_map(wire.headers), "localhost")
    return fast_verify(
        wire.method, wire.target, wire.headers, keyring, REGION, req.bucket, req.key, now
    )


OBJ = "http://127.0.0.1:8080/assets/public/a.txt"
Case = Callable[[], Wire]


def case(
    name: str, build: Case, fast_says: bool, full_says: bool | None = None, **kw: object
) -> object:
    """`full_says` defaults to `fast_says`: only presigned and non-read requests differ."""
    full = fast_says if full_says is None else full_says
    return pytest.param(build, fast_says, full, kw.get("keyring", KEYRING), kw.get("now", NOW),
                        id=name)  # fmt: skip


def tamper_path(w: Wire) -> Wire:
    return replace(w, target=w.target.replace(b"a.txt", b"b.txt"))


CASES = [
    # Accepted by both.
    case("a plain GET", lambda: signed("GET", OBJ), True),
    case("a HEAD", lambda: signed("HEAD", OBJ), True),
    case("a key with escapes", lambda: signed("GET", OBJ.replace("a.txt", "a%20b%2Bc%25.txt")),
         True),
    case("a non-ASCII key", lambda: signed("GET", OBJ.replace("a.txt", "%E6%97%A5%E6%9C%AC")),
         True),
    case("x-id in the query", lambda: signed("GET", OBJ + "?x-id=GetObject"), True),
    case("a signed Range", lambda: signed("GET", OBJ, headers={"Range": "bytes=0-9"}), True),
    case("signed 14 minutes ago", lambda: signed("GET", OBJ), True, now=NOW + 14 * MINUTE),
    case("signed 14 minutes ahead", lambda: signed("GET", OBJ), True, now=NOW - 14 * MINUTE),
    case("a reader inside its grant", lambda: signed("GET", OBJ, READER), True),
    case("a virtual-hosted request",
         lambda: signed("GET", "http://assets.localhost:8080/public/a.txt", READER), True),
    case("an unsigned header that is not x-amz-*",
         lambda: signed("GET", OBJ).set("x-forwarded-for", "10.0.0.1"), True),
    # Refused by both.
    case("a tampered signed header", lambda: signed("GET", OBJ).set("amz-sdk-request", "attempt=2"),
         False),
    case("a tampered x-amz-date", lambda: signed("GET", OBJ).set("x-amz-date", "20261126T120001Z"),
         False),
    case("a tampered payload hash",
         lambda: signed("GET", OBJ).set("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), False),
    case("a tampered host", lambda: signed("GET", OBJ).set("host", "127.0.0.1:8081"), False),
    case("a tampered path", lambda: tamper_path(signed("GET", OBJ)), False),
    case("a tampered query", lambda: replace(signed("GET", OBJ + "?x-id=GetObject"),
                                             target=b"/assets/public/a.txt?x-id=Other"), False),
    case("a signature of zeros",
         lambda: (w := signed("GET", OBJ)).set("authorization", w.header("authorization")[:-64]
                                               + "0" * 64), False),
    case("a signed header removed", lambda: signed("GET", OBJ).set("amz-sdk-request", None),
         False),
    case("the wrong secret", lambda: signed("GET", OBJ), False, keyring=WRONG_SECRET),
    case("an unknown access key", lambda: signed("GET", OBJ, ("AKIDUNKNOWN0000000000", "x")),
         False),
    case("skewed 16 minutes late", lambda: signed("GET", OBJ), False, now=NOW + 16 * MINUTE),
    case("skewed 16 minutes early", lambda: signed("GET", OBJ), False, now=NOW - 16 * MINUTE),
    case("an unsigned x-amz header",
         lambda: signed("GET", OBJ).set("x-amz-meta-extra", "1"), False),
    case("an unsigned x-amz-security-token",
         lambda: signed("GET", OBJ).set("x-amz-security-token", "token"), False),
    case("a reader outside its prefix",
         lambda: signed("GET", OBJ.replace("public/", "private/"), READER), False),
    case("a reader in another bucket",
         lambda: signed("GET", OBJ.replace("assets", "other"), READER), False),
    case("a reader copying from outside its grant",
         lambda: signed("GET", OBJ, READER, headers={"x-amz-copy-source": "/secret/k"}), False),
    case("signed for another region", lambda: signed("GET", OBJ, region="eu-west-1"), False),
    case("no Authorization", lambda: signed("GET", OBJ).set("authorization", None), False),
    case("Signature Version 2",
         lambda: signed("GET", OBJ).set("authorization", f"AWS {FULL[0]}:c2lnbmF0dXJl"), False),
    case("x-amz-date sent twice",
         lambda: replace(w := signed("GET", OBJ),
                         headers=(*w.headers, (b"x-amz-date", w.header("x-amz-date").encode()))),
         False),
    case("a header-signed request with presigned parameters too",
         lambda: replace(signed("GET", OBJ), target=presigned("GET", OBJ).target), False),
    # Accepted by the full path, but not the fast path's to answer.
    case("a presigned URL", lambda: presigned("GET", OBJ), False, full_says=True),
    case("a PUT", lambda: signed("PUT", OBJ), False, full_says=True),
    case("a DELETE", lambda: signed("DELETE", OBJ), False, full_says=True),
    case("a bucket listing", lambda: signed("GET", "http://127.0.0.1:8080/assets"), False,
         full_says=True),
]  # fmt: skip


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    sign_as_of(monkeypatch, FIXED)


@pytest.mark.parametrize(("build", "fast_says", "full_says", "keyring", "now"), CASES)
def test_fast_verify_says_yes_only_where_the_full_path_lets_the_read_through(
    build: Case, fast_says: bool, full_says: bool, keyring: Keyring, now: float
) -> None:
    wire = build()
    assert full_path_accepts(wire, keyring, now) is full_says
    assert fast(wire, keyring, now) is fast_says
    assert not fast_says or full_says  # never True where the full path would refuse


@pytest.mark.parametrize(
    "target",
    [b"http://127.0.0.1:8080/assets/public/a.txt", b"/assets/public/a.txt#frag", b"*"],
)
def test_a_target_not_in_origin_form_is_left_to_the_full_path(target: bytes) -> None:
    wire = signed("GET", OBJ)
    assert (
        fast_verify(wire.method, target, wire.headers, KEYRING, REGION, "assets", "k", NOW) is False
    )


def test_the_signing_key_is_derived_once_per_key_date_and_region() -> None:
    keyring = Keyring([Principal(*FULL, None)])
    for _ in range(3):
        assert fast(signed("GET", OBJ), keyring, NOW)
    assert len(keyring.signing_keys) == 1
    assert fast(signed("GET", OBJ, region="eu-west-1"), keyring, NOW) is False  # refused first
    assert len(keyring.signing_keys) == 1


def test_a_full_signing_key_cache_starts_again_rather_than_growing() -> None:
    keys = SigningKeys(max_entries=2)
    for date in ("20261124", "20261125", "20261126"):
        assert keys.get("AK", "SK", date, REGION) == signing_key("SK", date, REGION)
    assert len(keys) == 1


def test_the_signing_key_cache_shows_neither_secrets_nor_keys() -> None:
    keys = SigningKeys()
    derived = keys.get("AK", "s3cr3t-never-shown", "20261126", REGION)
    assert "s3cr3t" not in repr(keys) and derived.hex() not in repr(keys)
    assert "AK" not in repr(keys)


# Edits a client, a proxy on the way or an attacker might make to a signed request: each keeps
# the request parseable, and fast_verify must never say yes where the full path says no.
def _edits(rng: random.Random, wire: Wire) -> Wire:
    headers = list(wire.headers)
    target = wire.target
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(headers))
        name, value = headers[i]
        choice = rng.randrange(11)
        if choice == 0:  # a repeated header
            headers.insert(rng.randrange(len(headers) + 1), (name, value))
        elif choice == 1:  # a header dropped
            headers.pop(i)
        elif choice == 2:  # white space inside or around a value
            at = rng.randrange(len(value) + 1)
            headers[i] = (name, value[:at] + rng.choice([b" ", b"  ", b"\t"]) + value[at:])
        elif choice == 3:  # one byte of a value changed
            at = rng.randrange(len(value)) if value else 0
            byte = bytes([rng.choice(b"aZ09-_/=;, .%\xe9\x1f")])
            headers[i] = (name, value[:at] + byte + value[at + 1 :])
        elif choice == 4:  # a value's case changed
            headers[i] = (name, value.swapcase())
        elif choice == 5:  # a header added, x-amz-* or not
            extra = rng.choice([b"x-amz-meta-a", b"x-amz-copy-source", b"date", b"x-other"])
            headers.append((extra, b"/b/k" if extra == b"x-amz-copy-source" else b"1"))
        elif choice == 6:  # the query changed
            target += rng.choice([b"?x-id=GetObject", b"?a=1&a-b=2", b"?X-Amz-Signature=0",
                                  b"?versionId=1", b"&x=%41", b"?"])  # fmt: skip
        elif choice == 7:  # the path changed
            target = target.replace(b"a.txt", rng.choice([b"a%2Etxt", b"A.txt", b"a.txt/"]))
        elif choice == 8:  # a part of the Authorization moved or re-spelled
            auth = dict(headers).get(b"authorization", b"")
            spelled = rng.choice([
                auth.replace(b", ", b","), auth.replace(b", ", b" , "),
                auth.replace(b"SignedHeaders=", b"SignedHeaders=x-amz-meta-a;"),
                auth.replace(b"SignedHeaders=host;", b"SignedHeaders="),
                auth.replace(b"/us-east-1/", b"/US-EAST-1/"), auth.replace(b"/s3/", b"/S3/"),
                auth.replace(b"Credential=", b"Credential= "), auth + b" ",
                auth.replace(b"AWS4-HMAC-SHA256", b"aws4-hmac-sha256"),
            ])  # fmt: skip
            headers = [(n, spelled if n == b"authorization" else v) for n, v in headers]
        elif choice == 9:  # the date moved by a day, or spelled otherwise
            headers[i] = (name, value.replace(b"20261126", rng.choice([b"20261127", b"20261326"])))
        else:  # a method changed
            wire = replace(wire, method=rng.choice([b"HEAD", b"GET", b"PUT"]))
    return replace(wire, target=target, headers=tuple(headers))


def test_random_edits_of_signed_requests_never_pass_the_fast_check_alone() -> None:
    rng = random.Random(20261205)
    bases = [
        signed("GET", OBJ), signed("HEAD", OBJ), signed("GET", OBJ, READER),
        signed("GET", OBJ + "?x-id=GetObject"), signed("GET", OBJ, headers={"Range": "bytes=0-9"}),
        signed("GET", OBJ.replace("a.txt", "a%20b.txt")),
    ]  # fmt: skip
    agreed = Counter[tuple[bool, bool]]()
    for _ in range(3000):
        wire = _edits(rng, rng.choice(bases))
        try:
            full = full_path_accepts(wire, KEYRING, NOW)
        except (UnicodeDecodeError, ValueError):
            continue  # not a request the protocol would have handed over
        quick = fast(wire, KEYRING, NOW)
        assert not quick or full, wire
        agreed[(quick, full)] += 1
    # The edits reach both answers of both paths, so the property above was put to the test.
    assert agreed[(True, True)] > 100 and agreed[(False, False)] > 1000, agreed
