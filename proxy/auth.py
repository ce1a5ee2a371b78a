"""Who is asking: SigV4 verification of client requests, and what each access key may touch.

Pure: no I/O, and the clock is passed in. Both S3 forms are verified, the Authorization header
(S3 API reference, sig-v4-header-based-auth.html) and the presigned query
(sigv4-query-string-auth.html); the arithmetic is in `proxy.canonical`.

    verify(...) -> Verified, or raises (in the order S3 checks):
      InvalidRequest                     Signature Version 2, another scheme, both forms at once,
                                         no x-amz-content-sha256 (header form)
      AccessDenied                       no credentials at all; no valid Date or x-amz-date
      AuthorizationHeaderMalformed       Authorization or its Credential unparseable; wrong region
      AuthorizationQueryParametersError  the same for X-Amz-*; X-Amz-Expires not in 0..604800
      InvalidAccessKeyId                 the access key is not in the keyring
      AccessDenied                       host, an x-amz-* header or the Date used, not signed
      SignatureDoesNotMatch              anything signed was changed, or the secret is wrong
      RequestTimeTooSkewed               header form: more than 15 minutes from now
      AccessDenied                       presigned: "Request has expired" / "is not yet valid"

The time is looked at last, so a request with a bad signature learns nothing about it.
Secrets never reach a message or a repr. Each keyring keeps the signing keys it derived
(`proxy.canonical.SigningKeys`), so a request costs one SHA-256 and one HMAC, not five HMACs.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from proxy.canonical import (
    PRESIGN_PARAMS,
    V2,
    Claim,
    QueryPairs,
    SigningKeys,
    canonical_query,
    canonical_request,
    canonical_uris,
    signature,
    split_query,
    string_to_sign,
)
from proxy.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)

Access = Literal["read", "read-write"]
ACCESS_LEVELS: tuple[Access, ...] = ("read", "read-write")

MAX_SKEW_S = 15 * 60  # S3 answers RequestTimeTooSkewed beyond 15 minutes either way
SIGNATURE_PARAM = frozenset({b"X-Amz-Signature"})
NOT_SIGNED = "There were headers present in the request which were not signed"
ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
    "string parameter or the Authorization header should be specified"
)


@dataclass(frozen=True, slots=True)
class Grant:
    """One allow-list entry: a bucket ("*" for all) and a key prefix ("" for all keys)."""

    bucket: str
    prefix: str
    access: Access

    def covers(self, bucket: str, key: str, write: bool) -> bool:
        return (
            self.bucket in ("*", bucket)
            and key.startswith(self.prefix)
            and (not write or self.access == "read-write")
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """An access key, its secret, and its grants (None: unrestricted; (): nothing)."""

    access_key: str
    secret_key: str = field(repr=False)
    grants: tuple[Grant, ...] | None

    def allows(self, bucket: str, key: str, write: bool) -> bool:
        return self.grants is None or any(g.covers(bucket, key, write) for g in self.grants)


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature held: who sent it, and what the body checks need."""

    principal: Principal
    payload_hash: str  # the x-amz-content-sha256 the signature covered; UNSIGNED-PAYLOAD presigned
    signing_key: bytes = field(repr=False)  # for aws-chunked chunk signatures
    amz_date: str
    scope: str  # "<date>/<region>/s3/aws4_request"
    seed_signature: str


class Keyring:
    """Access key -> Principal, and the signing keys derived from their secrets."""

    __slots__ = ("_principals", "signing_keys")

    def __init__(self, principals: Iterable[Principal]) -> None:
        self._principals: dict[str, Principal] = {}
        self.signing_keys = SigningKeys()
        for principal in principals:
            if principal.access_key in self._principals:
                raise ValueError(f"access key {principal.access_key} is listed twice")
            self._principals[principal.access_key] = principal

    @classmethod
    def from_mapping(cls, raw: object) -> Keyring:
        """From YAML/JSON: [{access_key, secret_key, grants: [{bucket, prefix, access}]}]."""
        if not isinstance(raw, list):
            raise ValueError("keys: expected a list of {access_key, secret_key, grants}")
        return cls(_principal(entry, f"keys[{i}]") for i, entry in enumerate(raw))

    def get(self, access_key: str) -> Principal | None:
        return self._principals.get(access_key)

    def __len__(self) -> int:
        return len(self._principals)

    def __repr__(self) -> str:
        return f"Keyring({sorted(self._principals)})"


def _principal(entry: object, where: str) -> Principal:
    fields = _fields(entry, where, required={"access_key", "secret_key"}, optional={"grants"})
    access_key = _text(fields, "access_key", where)
    if "/" in access_key or access_key != access_key.strip():
        raise ValueError(f"{where}: access_key must not contain '/' or surrounding spaces")
    where = f"{where} ({access_key})"
    secret_key = _text(fields, "secret_key", where)
    grants = fields.get("grants")
    if grants is None:
        return Principal(access_key, secret_key, None)
    if not isinstance(grants, list):
        raise ValueError(f"{where}: grants must be a list")
    return Principal(
        access_key,
        secret_key,
        tuple(_grant(g, f"{where}.grants[{j}]") for j, g in enumerate(grants)),
    )


def _grant(entry: object, where: str) -> Grant:
    fields = _fields(entry, where, required={"bucket", "access"}, optional={"prefix"})
    prefix = fields.get("prefix", "")
    if not isinstance(prefix, str):
        raise ValueError(f"{where}: prefix must be a string")
    access = next((a for a in ACCESS_LEVELS if a == fields["access"]), None)
    if access is None:
        raise ValueError(f"{where}: access must be 'read' or 'read-write'")
    return Grant(_text(fields, "bucket", where), prefix, access)


def _fields(entry: object, where: str, required: set[str], optional: set[str]) -> dict[str, object]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    names = {str(name) for name in entry}
    if unknown := names - required - optional:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if missing := required - names:
        raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
    return {str(name): value for name, value in entry.items()}


def _text(fields: Mapping[str, object], name: str, where: str) -> str:
    value = fields[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {name} must be a non-empty string")
    return value


def verify(
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Mapping[str, str],
    keyring: Keyring,
    now: float,
    *,
    expected_region: str | None = None,
) -> Verified:
    """Check a request's SigV4 signature; `headers` have lower-case names, values as received.

    `raw_path` and `query_string` are the bytes of the request target, never normalised.
    A header sent more than once must arrive as its values joined with ",".
    """
    query = split_query(query_string)
    claim = _read_claim(headers, query)
    _check_region(claim, expected_region)
    principal = keyring.get(claim.credential.access_key)
    if principal is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=claim.credential.access_key)
    _check_all_signed(claim, headers)
    cred = claim.credential
    keys = keyring.signing_keys
    key = keys.get(principal.access_key, principal.secret_key, cred.date, cred.region)
    _check_signature(claim, key, method, raw_path, query, headers)
    _check_time(claim, now)
    seed = claim.signature.lower()  # aws-chunked chunk signatures chain from it
    return Verified(principal, claim.payload_hash, key, claim.amz_date, cred.scope, seed)


def _read_claim(headers: Mapping[str, str], query: QueryPairs) -> Claim:
    """The credentials a request carries, in the header or the query; none is AccessDenied."""
    authorization = headers.get("authorization", "").strip()
    names = {name for name, _ in query}
    presigned = any(name in names for name in PRESIGN_PARAMS)
    if authorization and presigned:  # S3 says InvalidArgument, not in proxy.errors; also 400
        raise InvalidRequest(ONE_MECHANISM, ArgumentName="Authorization")
    if authorization:
        return Claim.from_header(authorization, headers)
    if presigned:
        return Claim.from_query(query)
    if b"AWSAccessKeyId" in names:  # a Signature Version 2 presigned URL
        raise InvalidRequest(V2)
    # S3's answer to an anonymous request for a private bucket.
    raise AccessDenied()


def _check_region(claim: Claim, expected: str | None) -> None:
    region = claim.credential.region
    if expected is not None and region != expected:
        detail = f"the region '{region}' is wrong; expecting '{expected}'"
        raise claim.malformed(detail, Region=expected)


def _check_all_signed(claim: Claim, headers: Mapping[str, str]) -> None:
    # S3 refuses x-amz-* headers the signature does not cover: the proxy forwards them under its
    # own signature, so an unsigned one would be a header anyone on the path could add.
    must = {"host"} | {name for name in headers if name.startswith("x-amz-")}
    if claim.presigned:
        must.discard("x-amz-content-sha256")  # presigned payloads are UNSIGNED-PAYLOAD
    else:
        must.add(claim.time_header)  # an unsigned Date could be moved to replay the request
    if missing := sorted(must - set(claim.signed_headers)):
        raise AccessDenied(NOT_SIGNED, HeadersNotSigned=", ".join(missing))


def _check_signature(
    claim: Claim,
    key: bytes,
    method: str,
    raw_path: bytes,
    query: QueryPairs,
    headers: Mapping[str, str],
) -> None:
    access_key = claim.credential.access_key
    if any(name not in headers for name in claim.signed_headers):
        # A header listed in SignedHeaders is not in the request.
        raise SignatureDoesNotMatch(AWSAccessKeyId=access_key)
    signed = [(name, headers[name]) for name in claim.signed_headers]
    canonical_q = canonical_query(query, SIGNATURE_PARAM if claim.presigned else frozenset())
    provided = claim.signature.lower().encode("utf-8", errors="replace")
    scope = claim.credential.scope
    first: tuple[str, str] | None = None
    for uri in canonical_uris(raw_path):  # one URI unless the path has escapes
        request = canonical_request(method, uri, canonical_q, signed, claim.payload_hash)
        text = string_to_sign(claim.amz_date, scope, request)
        if hmac.compare_digest(signature(key, text).encode(), provided):
            return
        first = first or (request, text)
    assert first is not None  # canonical_uris is never empty
    # Like S3, say what was signed here, so a client can compare its own strings with ours.
    request, text = first
    raise SignatureDoesNotMatch(
        AWSAccessKeyId=access_key,
        SignatureProvided=claim.signature,
        StringToSign=text,
        CanonicalRequest=request,
    )


def _check_time(claim: Claim, now: float) -> None:
    if claim.expires_s is None:
        if abs(now - claim.signed_at) > MAX_SKEW_S:
            raise RequestTimeTooSkewed(
                RequestTime=claim.amz_date,
                ServerTime=_iso(now),
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_S * 1000),
            )
        return
    server_time = _iso(now)
    # A presigned URL is valid from X-Amz-Date (give or take the skew) for X-Amz-Expires seconds;
    # X-Amz-Expires=0 parses but is never valid.
    if claim.signed_at - now > MAX_SKEW_S:
        fields = {"X-Amz-Date": claim.amz_date, "ServerTime": server_time}
        raise AccessDenied("Request is not yet valid", **fields)
    ends = claim.signed_at + claim.expires_s
    if claim.expires_s == 0 or now > ends:
        fields = {"X-Amz-Expires": str(claim.expires_s), "Expires": _iso(ends)}
        raise AccessDenied("Request has expired", **fields, ServerTime=server_time)


def _iso(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
