"""SigV4 for the protocol's fast path: may this GET/HEAD of one object be answered at once? Pure.

The fast path (`proxy/fastpath.py`) sees a request before any ASGI scope exists: the method, the
request target and the header list as bytes. `fast_verify` answers True only when the full path
would let the request through both of its gates, `proxy.auth.verify` and
`proxy.access.authorize`; it reuses both rather than restating them, so the two cannot drift
apart. Anything else is False, which never refuses: the request then takes the full path, and
that answers with S3's error. Presigned URLs are always False (they carry their signature in
the query, which the fast path does not serve).
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.access import authorize
from proxy.asgi import header_map
from proxy.auth import Keyring, verify
from proxy.errors import S3Error
from proxy.s3request import S3Request

HEADER_FORM = b"AWS4-HMAC-SHA256 "  # the scheme, and the space `verify` splits it at
READS = {b"GET": "GET", b"HEAD": "HEAD"}


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
    method_name = READS.get(method)
    if method_name is None or not key or not url.startswith(b"/") or b"#" in url:
        return False  # not an object read, or a target uvicorn would split differently
    if not any(name == b"authorization" and value.lstrip().startswith(HEADER_FORM)
               for name, value in headers):  # fmt: skip
        return False  # unsigned or presigned: the full path decides what to answer
    raw_path, _, query = url.partition(b"?")
    fields = header_map(headers)  # exactly the mapping the full path verifies
    try:
        verified = verify(
            method_name, raw_path, query, fields, keyring, now, expected_region=region
        )
        authorize(S3Request(method_name, bucket, key, (), True), fields, verified.principal)
    except S3Error:
        return False
    return True
