"""What an incoming request asks of S3: addressing, the bucket and key, and whether it is cacheable.

Pure: no I/O, no framework. Keys are opaque. The raw path is percent-decoded exactly once and
never normalised, so `a/../b`, `a//b` and `100%25.txt` stay the distinct keys S3 says they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes

from proxy.errors import InvalidRequest, InvalidURI, MethodNotAllowed, S3Error
from tiering.upstream import object_path as object_path  # addressing the upstream client owns

# Query parameters that do not change what GET/HEAD object returns. Everything else
# (versionId, partNumber, response-*, acl, tagging, ...) makes the request a pass-through.
NEUTRAL_QUERY = frozenset({"x-id"})
# Presigned-URL parameters: they authenticate, they do not select content. Never forwarded,
# since the proxy re-signs with its own identity.
PRESIGN_QUERY = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)
# Headers with which S3's answer depends on more than the object: customer-supplied keys and
# requester-pays billing. Such reads bypass the cache.
BYPASS_HEADERS = (
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-request-payer",
    "x-amz-expected-bucket-owner",
)
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
S3_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})
HEADER_SECTION_LIMIT = 8192  # S3 refuses larger header sections (RequestHeaderSectionTooLarge)
_HOST = re.compile(r"(?:[A-Za-z0-9._~%!$&'()*+,;=-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


class HeaderSectionTooLarge(S3Error):
    status = 400
    code = "RequestHeaderSectionTooLarge"
    message = "Your request header section exceeds the maximum allowed size."


def check_wire(method: str, http_version: str, scope_headers: list[tuple[bytes, bytes]]) -> None:
    """What must be refused before a request is read as S3: oversized header sections,
    missing or malformed Host (RFC 9112 §3.2: 400), and methods S3 does not have (405)."""
    if sum(len(n) + len(v) + 4 for n, v in scope_headers) > HEADER_SECTION_LIMIT:
        raise HeaderSectionTooLarge()
    hosts = [v for n, v in scope_headers if n == b"host"]
    if http_version != "1.0" and len(hosts) != 1:
        raise InvalidRequest("A request must carry exactly one Host header.")
    if hosts and not host_is_valid(hosts[0]):
        raise InvalidRequest("The Host header is not a valid host.")
    if method not in S3_METHODS:
        raise MethodNotAllowed(Method=method, ResourceType="OBJECT")


def host_is_valid(host: bytes) -> bool:
    """RFC 9112 §3.2: a Host is a reg-name or IP literal with an optional port."""
    return _HOST.fullmatch(host.decode("latin-1")) is not None


@dataclass(frozen=True, slots=True)
class S3Request:
    """One client request, addressed: bucket "" is the service, key "" is the bucket itself."""

    method: str
    bucket: str
    key: str
    query: tuple[tuple[str, str], ...]
    cacheable: bool

    @classmethod
    def parse(
        cls,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        headers: Mapping[str, str],
        base_domain: str,
    ) -> S3Request:
        query = tuple(p for p in parse_query(query_string) if p[0] not in PRESIGN_QUERY)
        bucket, key = split_address(raw_path, headers.get("host", ""), base_domain)
        cacheable = (
            method in CACHEABLE_METHODS
            and bool(bucket)
            and bool(key)
            and all(name in NEUTRAL_QUERY for name, _ in query)
            and not any(h in headers for h in BYPASS_HEADERS)
        )
        return cls(method, bucket, key, query, cacheable)

    @property
    def is_object_read(self) -> bool:
        """GET/HEAD of an object, cacheable or not: these answers carry X-Cache-Status."""
        return self.method in CACHEABLE_METHODS and bool(self.bucket) and bool(self.key)

    @property
    def resource(self) -> str:
        """The `<Resource>` of an error document: the path-style name of what was asked for."""
        if not self.bucket:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"

    def upstream_path(self) -> str:
        """The path-style path to send upstream, encoded the way SigV4 canonicalises it."""
        return object_path(self.bucket, self.key)


def encode_query(query: tuple[tuple[str, str], ...]) -> str:
    """Canonical SigV4 encoding of query pairs: the same text is signed and sent."""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def parse_query(query_string: bytes) -> list[tuple[str, str]]:
    # Not parse_qsl: a '+' in an S3 query is a plus sign, not a form-encoded space.
    pairs = []
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def split_address(raw_path: bytes, host: str, base_domain: str) -> tuple[str, str]:
    """(bucket, key) from virtual-hosted (`bucket.<base_domain>`) or path-style addressing."""
    path = decode_path(raw_path)
    if not path.startswith("/"):
        raise InvalidURI()
    bucket = virtual_host_bucket(host, base_domain)
    if bucket is not None:
        return bucket, path[1:]
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def virtual_host_bucket(host: str, base_domain: str) -> str | None:
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    suffix = "." + base_domain.lower()
    if base_domain and name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def decode_path(raw_path: bytes) -> str:
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidURI() from exc
