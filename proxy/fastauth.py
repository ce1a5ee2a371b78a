"""SigV4 for the protocol's fast path: may this GET/HEAD of one object be answered at once? Pure.

The fast path (`proxy/fastpath.py`) sees a request before any ASGI scope exists: the method, the
request target and the header list as bytes. `fast_verify` answers True only when the full path
would let the request through both of its gates, `proxy.auth.verify` and
`proxy.access.authorize`. Anything else is False, which never refuses: the request then takes the
full path, and that answers with S3's error.

It reads only the form every SDK sends, in one pass over the raw bytes: an Authorization
header exactly `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request, SignedHeaders=...,
Signature=<64 lower-case hex>`, an x-amz-date, an x-amz-content-sha256, no header twice, a
query of plain `name=value` pairs. Within that form each of the full path's checks is made
again (region, access key, every x-amz-* header and the host and date signed, each signed
header present, the signature over the canonical request as `proxy.canonical` computes it,
the 15-minute skew, the grants); outside it the answer is False and the full path decides.
Presigned URLs are always False (they carry their signature in the query). Restating the checks
is what makes this cost a few microseconds instead of twenty (no header map, no claim objects,
no exceptions on the way); `tests/test_fastauth.py` holds the two paths to the same decisions,
over a table of botocore-signed requests and thousands of random edits of them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from proxy.auth import MAX_SKEW_S, Keyring
from proxy.canonical import PRESIGN_PARAMS, amz_time

READS = (b"GET", b"HEAD")
AUTHORIZATION = re.compile(
    rb"AWS4-HMAC-SHA256 Credential=([^/, ]+)/([0-9]{8})/([^/, ]+)/s3/aws4_request,"
    rb" ?SignedHeaders=((?:[a-z0-9-]+;)*[a-z0-9-]+), ?Signature=([0-9a-f]{64})"
)
# A query pair of bytes that are their own UriEncode is already canonical; any other query goes
# to the full path. A path is signed as sent (the full path's first candidate URI, all an SDK
# signs), so any ASCII path will do; the full path also tries the re-encoded one.
PLAIN_PAIR = re.compile(rb"[A-Za-z0-9_.~-]+(?:=[A-Za-z0-9_.~-]*)?")
PRESIGNED = frozenset(PRESIGN_PARAMS)
# A header value byte that trimming would touch (other than a space): str's white space, 0x1c-0x1f
# included, and NUL, the separator below (so a value's own NUL counts one too many).
NOT_PLAIN = b"\x00\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
MAX_TIMES = 4096  # x-amz-date values kept parsed: a second's worth per client at most each
_times: dict[bytes, float | None] = {}


def fast_verify(
    method: bytes,
    url: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    keyring: Keyring,
    region: str,
    bucket: str,
    key: str,
    now: float,
) -> bool:
    """True when a header-signed GET/HEAD of `bucket`/`key` verifies and may read that key.

    `url` is the origin-form request target (path?query) as received; `headers` are the
    request's (lower-case name, value) pairs; `bucket` and `key` are what the request
    addresses (as `S3Request.parse` reads them); `region` is the one clients must sign for.
    """
    if method not in READS or not bucket or not key or not url.startswith(b"/"):
        return False  # not an object read, or a target uvicorn would split differently
    fields: dict[bytes, bytes] = {}
    amz: list[bytes] = []
    for name, value in headers:
        if name in fields:
            return False  # the full path joins repeats with ","; rare enough to leave to it
        fields[name] = value
        if name[:6] == b"x-amz-":
            amz.append(name)
    authorization = fields.get(b"authorization")
    date = fields.get(b"x-amz-date")
    payload_hash = fields.get(b"x-amz-content-sha256")
    if authorization is None or date is None or payload_hash is None:
        return False
    claim = AUTHORIZATION.fullmatch(authorization)
    raw_path, _, query = url.partition(b"?")
    if claim is None or not raw_path.isascii() or b"#" in url or b"x-amz-copy-source" in fields:
        return False
    access_key, scope_date, scope_region, signed_list, provided = claim.groups()
    if scope_region != region.encode() or date[:8] != scope_date:
        return False
    principal = keyring.get(access_key.decode("latin-1"))
    if principal is None or not principal.allows(bucket, key, False):
        return False
    signed = signed_list.split(b";")  # the pattern allows no empty name
    if b"host" not in signed or b"x-amz-date" not in signed:
        return False
    for name in amz:
        if name not in signed:
            return False  # the full path refuses an unsigned x-amz-* header
    pairs: list[tuple[bytes, bytes]] = []  # sorted as the full path sorts: by name, then value
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            if name in PRESIGNED or not PLAIN_PAIR.fullmatch(part):
                return False
            pairs.append((name, value))
    signed_at = _times.get(date, 0.0)
    if signed_at == 0.0:
        if len(_times) >= MAX_TIMES:
            _times.clear()
        signed_at = _times[date] = amz_time(date.decode("latin-1"))
    if signed_at is None or abs(now - signed_at) > MAX_SKEW_S:
        return False
    values = list(map(fields.get, signed))
    if None in values:
        return False  # a header SignedHeaders names is not in the request
    values.append(payload_hash)
    every = b"\x00".join(values)  # type: ignore[arg-type]
    # The full path signs the UTF-8 of the values read as latin-1 text, trimmed (ends stripped,
    # runs of str's white space made one space): for ASCII values with no white space but
    # single inner spaces, that is the values' own bytes. Any other value is left to it.
    if (
        not every.isascii()
        or len(every) - len(every.translate(None, NOT_PLAIN)) != len(values) - 1
        or b"  " in every
        or b"\x00 " in every
        or b" \x00" in every
        or every[:1] == b" "
        or every[-1:] == b" "
    ):
        return False
    canonical = b"\n".join((
        method, raw_path, b"&".join(b"%s=%s" % pair for pair in sorted(pairs)) if pairs else b"",
        b"\n".join(map(b":".join, zip(signed, values, strict=False))), b"",  # type: ignore[arg-type]
        signed_list, payload_hash,
    ))  # fmt: skip
    signing_key = keyring.signing_keys.get(
        principal.access_key, principal.secret_key, scope_date.decode(), region
    )
    text = b"AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s" % (
        date,
        scope_date,
        scope_region,
        hashlib.sha256(canonical).hexdigest().encode(),
    )
    return hmac.compare_digest(hmac.digest(signing_key, text, "sha256").hex().encode(), provided)
