"""The SigV4 wire format, for verifying clients: what a request claims, and the arithmetic. Pure.

`Claim` reads the Authorization header or the presigned X-Amz-* parameters, raising S3's answer
for anything unparseable; nothing in a claim is believed yet (`proxy.auth` decides that).
The rest follows the S3 API reference, "Signature Calculations for the Authorization Header"
(sig-v4-header-based-auth.html) and "Authenticating Requests: Using Query Parameters"
(sigv4-query-string-auth.html):

    CanonicalRequest = Method \\n CanonicalURI \\n CanonicalQueryString \\n
                       CanonicalHeaders \\n SignedHeaders \\n HashedPayload
    StringToSign     = "AWS4-HMAC-SHA256" \\n timestamp \\n scope \\n hex(SHA256(CanonicalRequest))
    SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request")

The signing key depends only on the secret, the date and the region, so `SigningKeys` keeps it:
four of the five HMACs of a verification are then done once per key and day, not per request.
For S3 the path is never normalised (`a/../b` and `a//b` are keys) and is URI-encoded once, not
twice as for other services.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from proxy.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidRequest,
    S3Error,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_EXPIRES_S = 7 * 24 * 60 * 60  # a SigV4 signing key is valid for seven days at most
# SigV4 UriEncode: every byte but A-Z a-z 0-9 - _ . ~ is %XX (quote never escapes those).
UNRESERVED = "-_.~"
# A path made of these bytes alone is its own UriEncode (with '/' kept): nothing to re-encode.
_PLAIN_PATH_BYTES = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + UNRESERVED.encode() + b"/"
)
MAX_SIGNING_KEYS = 1024  # a few keys times a region or two and today/yesterday: never near it
AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
PRESIGN_PARAMS = (
    b"X-Amz-Algorithm",
    b"X-Amz-Credential",
    b"X-Amz-Signature",
    b"X-Amz-Date",
    b"X-Amz-SignedHeaders",
    b"X-Amz-Expires",
)

# S3's own wording, so that clients, and people searching for the text, find what they expect.
V2 = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
NO_DATE = "AWS authentication requires a valid Date or x-amz-date header"
NO_PAYLOAD_HASH = "Missing required header for this request: x-amz-content-sha256"
THREE_PARTS = (
    "the authorization header requires three components: Credential, SignedHeaders, and Signature."
)
CREDENTIAL_FORM = (
    'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
)
PRESIGN_REQUIRED = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
BAD_PRESIGN_DATE = "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
EXPIRES_RANGE = (
    "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
    "must be less than 604800 seconds"
)

QueryPairs = list[tuple[bytes, bytes]]
Malformed = Callable[..., S3Error]


def header_malformed(detail: str, **fields: str) -> S3Error:
    message = f"The authorization header is malformed; {detail}"
    return AuthorizationHeaderMalformed(message, **fields)


def query_malformed(detail: str, **fields: str) -> S3Error:
    message = f"Error parsing the X-Amz-Credential parameter; {detail}"
    return AuthorizationQueryParametersError(message, **fields)


@dataclass(frozen=True, slots=True)
class Credential:
    """The `Credential=` of a request: an access key and the scope it was signed for."""

    access_key: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/s3/aws4_request"

    @classmethod
    def parse(cls, text: str, malformed: Malformed) -> Credential:
        parts = text.split("/")
        if len(parts) != 5 or not all(parts):
            raise malformed(CREDENTIAL_FORM)
        access_key, date, region, service, terminal = parts
        if amz_time(f"{date}T000000Z") is None:
            detail = f'incorrect date format "{date}". This date in the credential must be in '
            raise malformed(detail + 'the format "yyyyMMdd".')
        if service != "s3":
            raise malformed(f'incorrect service "{service}". This endpoint belongs to "s3".')
        if terminal != "aws4_request":
            raise malformed(f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".')
        return cls(access_key, date, region)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a request says about its own signature, before any of it is believed."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # ISO 8601 basic, as it goes into the string to sign
    signed_at: float  # the same, as POSIX time
    payload_hash: str  # the last line of the canonical request
    time_header: str  # the header that carried the time; "" when presigned (it is in the query)
    expires_s: int | None  # presigned only

    @property
    def presigned(self) -> bool:
        return self.expires_s is not None

    @property
    def malformed(self) -> Malformed:
        return query_malformed if self.presigned else header_malformed

    @classmethod
    def from_header(cls, authorization: str, headers: Mapping[str, str]) -> Claim:
        parts = _authorization_parts(authorization)
        credential = Credential.parse(parts["Credential"], header_malformed)
        time_header, amz_date, signed_at = _header_time(headers)
        payload_hash = headers.get("x-amz-content-sha256")
        if payload_hash is None:
            raise InvalidRequest(NO_PAYLOAD_HASH)
        claim = cls(
            credential,
            _names(parts["SignedHeaders"]),
            parts["Signature"],
            amz_date,
            signed_at,
            payload_hash,
            time_header,
            expires_s=None,
        )
        return claim.dated_as_scoped()

    @classmethod
    def from_query(cls, pairs: QueryPairs) -> Claim:
        params = _presign_params(pairs)
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise AuthorizationQueryParametersError(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
        credential = Credential.parse(params["X-Amz-Credential"], query_malformed)
        amz_date, expires_s = params["X-Amz-Date"], _expires(params["X-Amz-Expires"])
        if (signed_at := amz_time(amz_date)) is None:
            raise AuthorizationQueryParametersError(BAD_PRESIGN_DATE)
        claim = cls(
            credential,
            _names(params["X-Amz-SignedHeaders"]),
            params["X-Amz-Signature"],
            amz_date,
            signed_at,
            UNSIGNED_PAYLOAD,  # the presigned canonical request never covers the body
            time_header="",
            expires_s=expires_s,
        )
        return claim.dated_as_scoped()

    def dated_as_scoped(self) -> Claim:
        if self.credential.date != self.amz_date[:8]:
            detail = f'Invalid credential date "{self.credential.date}". This date is not the same '
            raise self.malformed(detail + f'as X-Amz-Date: "{self.amz_date[:8]}".')
        return self


def _authorization_parts(authorization: str) -> dict[str, str]:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        # "AWS AKID:signature" is Signature Version 2, which S3 has retired.
        if scheme == "AWS" or scheme.startswith("AWS4-"):
            raise InvalidRequest(V2)
        # S3 says InvalidArgument (400), a code proxy.errors does not have.
        raise InvalidRequest("Unsupported Authorization Type", ArgumentName="Authorization")
    parts = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        parts[name] = value
    if not all(name in parts for name in ("Credential", "SignedHeaders", "Signature")):
        raise header_malformed(THREE_PARTS)
    return parts


def _header_time(headers: Mapping[str, str]) -> tuple[str, str, float]:
    """(header used, its time in ISO 8601 basic form, as POSIX time)."""
    # x-amz-date wins over Date when both are sent.
    if "x-amz-date" in headers:
        text = headers["x-amz-date"]
        if (signed_at := amz_time(text)) is None:
            raise AccessDenied(NO_DATE)
        return "x-amz-date", text, signed_at  # a valid x-amz-date is already in that form
    if (signed_at := _http_time(headers.get("date", ""))) is None:
        raise AccessDenied(NO_DATE)
    return "date", amz_format(signed_at), signed_at


def _presign_params(pairs: QueryPairs) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in PRESIGN_PARAMS:
            params.setdefault(name.decode(), decoded(value))
    if len(params) != len(PRESIGN_PARAMS):
        raise AuthorizationQueryParametersError(PRESIGN_REQUIRED)
    return params


def _expires(text: str) -> int:
    if not re.fullmatch("-?[0-9]+", text):
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number")
    seconds = int(text)
    if seconds < 0:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if seconds > MAX_EXPIRES_S:
        raise AuthorizationQueryParametersError(EXPIRES_RANGE)
    return seconds


def _names(signed_headers: str) -> tuple[str, ...]:
    return tuple(name for name in signed_headers.split(";") if name)


def amz_time(text: str) -> float | None:
    """POSIX time of an ISO 8601 basic timestamp ("20130524T000000Z"), None if it is not one."""
    if not AMZ_DATE.fullmatch(text):
        return None
    # The fields are fixed-width, so this accepts exactly what strptime("%Y%m%dT%H%M%SZ")
    # would, at a tenth of its cost; datetime() rejects what is not a real moment.
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[9:11]), int(text[11:13]), int(text[13:15])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _http_time(text: str) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return None if moment.tzinfo is None else moment.timestamp()


def amz_format(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).strftime("%Y%m%dT%H%M%SZ")


def split_query(query_string: bytes) -> QueryPairs:
    """(name, value) pairs as they arrived, still percent-encoded; `acl` is ("acl", "")."""
    pairs = []
    for part in query_string.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((name, value))
    return pairs


def decoded(piece: bytes) -> str:
    # Not unquote_plus: in an S3 query '+' is a plus sign.
    return unquote_to_bytes(piece).decode("utf-8", errors="replace")


def canonical_query(pairs: QueryPairs, exclude: frozenset[bytes] = frozenset()) -> str:
    """Decode what arrived, re-encode with UriEncode, sort by name then value, join with '&'."""
    encoded = sorted(
        (_uri_encode(name), _uri_encode(value)) for name, value in pairs if name not in exclude
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def _uri_encode(piece: bytes) -> str:
    return quote(unquote_to_bytes(piece), safe=UNRESERVED)


def canonical_uris(raw_path: bytes) -> list[str]:
    """The canonical URIs a client may have signed for this path, most likely first.

    SDKs sign the path exactly as they send it, fully encoded (botocore's S3SigV4Auth leaves it
    untouched), so the raw path comes first. A client that sends a byte S3 does not require to
    be escaped (the AWS example `PUT /test$file.text` signs `/test%24file.text`) signed the
    UriEncode of the decoded path, with '/' kept. Both name the same decoded key, and neither
    removes dot segments or empty segments.
    """
    raw = raw_path.decode("utf-8", errors="replace") or "/"
    if not raw_path.translate(None, _PLAIN_PATH_BYTES):  # the common case: nothing escaped
        return [raw]
    encoded = quote(unquote_to_bytes(raw_path), safe="/" + UNRESERVED) or "/"
    return [raw] if encoded == raw else [raw, encoded]


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
) -> str:
    """`headers` are the signed (name, value) pairs, in SignedHeaders order."""
    signed = list(headers)
    # Trimall: strip both ends of a value, collapse internal runs of white space to one space.
    lines = "".join(f"{name}:{' '.join(value.split())}\n" for name, value in signed)
    names = ";".join(name for name, _ in signed)
    return "\n".join((method, uri, query, lines, names, payload_hash))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join((ALGORITHM, amz_date, scope, digest))


def signing_key(secret_key: str, date: str, region: str, service: str = "s3") -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


class SigningKeys:
    """Derived signing keys by (access key, date, region, service), at most `max_entries`.

    Belongs to one keyring, where an access key names exactly one secret, so the access key
    stands for the secret in the cache key. Full, it is emptied rather than ordered: entries
    are per key and day, so a clear costs one derivation per key, and no request pays for an
    LRU's bookkeeping. Neither secrets nor derived keys appear in its repr.
    """

    __slots__ = ("_keys", "_max_entries")

    def __init__(self, max_entries: int = MAX_SIGNING_KEYS) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._max_entries = max_entries

    def get(
        self, access_key: str, secret_key: str, date: str, region: str, service: str = "s3"
    ) -> bytes:
        scope = (access_key, date, region, service)
        key = self._keys.get(scope)
        if key is None:
            if len(self._keys) >= self._max_entries:
                self._keys.clear()
            key = self._keys[scope] = signing_key(secret_key, date, region, service)
        return key

    def clear(self) -> None:
        self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"SigningKeys({len(self._keys)} of {self._max_entries})"


def signature(key: bytes, text: str) -> str:
    return _hmac(key, text).hex()


def _hmac(key: bytes, text: str) -> bytes:
    # hmac.digest is the one-shot C path: a third of hmac.new(...).digest()'s cost.
    return hmac.digest(key, text.encode("utf-8"), "sha256")
