"""What the cache knows about one object version: size, ETag and the headers S3 sent with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

Headers = tuple[tuple[bytes, bytes], ...]

# Headers that describe one response rather than the object, so they are never replayed.
PER_RESPONSE = frozenset(
    {
        b"content-length",
        b"content-range",
        b"date",
        b"server",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"x-amz-request-id",
        b"x-amz-id-2",
        b"x-amzn-requestid",
        b"x-cache-status",  # a cache's own, per answer: a member's answer carries one
        b"access-control-allow-origin",
        b"x-amz-content-sha256",
    }
)
CHECKSUM_PREFIX = b"x-amz-checksum-"
# x-amz-checksum-mode and x-amz-checksum-type travel with the checksums they qualify.
CHECKSUM_TYPE = b"x-amz-checksum-type"


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """One version of one object as the upstream described it.

    `checksums` is None when not yet known: S3 sends full-object checksums only on a whole GET or
    HEAD made with checksum mode, never with a ranged GET, which is how a cold miss is fetched.
    """

    etag: str
    size: int
    last_modified: int | None
    headers: Headers
    checksums: Headers | None
    validated_at: float

    @classmethod
    def from_upstream(cls, raw_headers: Headers, size: int, now: float, whole: bool) -> ObjectMeta:
        """Build from an upstream GET/HEAD answer; `whole` says checksums could have been sent."""
        kept: list[tuple[bytes, bytes]] = []
        checksums: list[tuple[bytes, bytes]] = []
        etag = ""
        last_modified: int | None = None
        for name, value in raw_headers:
            lname = name.lower()
            if lname in PER_RESPONSE:
                continue
            if lname.startswith(CHECKSUM_PREFIX) or lname == CHECKSUM_TYPE:
                checksums.append((lname, value))
                continue
            if lname == b"etag":
                etag = value.decode("latin-1")
            elif lname == b"last-modified":
                last_modified = parse_date(value.decode("latin-1"))
            kept.append((lname, value))
        return cls(
            etag=etag,
            size=size,
            last_modified=last_modified,
            headers=tuple(kept),
            checksums=_replayable(etag, tuple(checksums)) if whole else None,
            validated_at=now,
        )

    def revalidated(self, now: float) -> ObjectMeta:
        return replace(self, validated_at=now)

    def with_checksums(self, checksums: Headers) -> ObjectMeta:
        return replace(self, checksums=checksums)


def _replayable(etag: str, checksums: Headers) -> Headers:
    """The checksums that can be replayed on a whole GET of this object.

    A multipart object's checksum is either COMPOSITE (`...-N`) or FULL_OBJECT, and S3 says which
    in x-amz-checksum-type. Without that header the value cannot be told apart from a
    full-object checksum (moto's HEAD sends a composite value so), and replaying it would make
    boto3 reject a correct body; such checksums are left out, as S3 leaves out composite ones'
    validation.
    """
    multipart = "-" in etag.strip('"')
    if multipart and not any(name == CHECKSUM_TYPE for name, _ in checksums):
        return ()
    return checksums


def md5_matches(meta: ObjectMeta, whole_body: bytes) -> bool:
    """False only when the ETag is a plain MD5 of the content and the body does not hash to it."""
    expected = etag_md5(meta)
    if expected is None:
        return True
    return hashlib.md5(whole_body, usedforsecurity=False).hexdigest() == expected


def etag_md5(meta: ObjectMeta) -> str | None:
    """The MD5 (hex) the object's bytes must hash to, or None when its ETag is not one.

    S3's ETag is the MD5 of the bytes for single-part objects stored unencrypted or with SSE-S3;
    multipart ETags end in -N, and SSE-KMS/SSE-C ETags are not MD5s, so those are not checked.
    """
    etag = meta.etag.strip('"')
    encrypted = any(
        name in (b"x-amz-server-side-encryption-customer-algorithm",)
        or (name == b"x-amz-server-side-encryption" and value.startswith(b"aws:kms"))
        for name, value in meta.headers
    )
    if encrypted or len(etag) != 32 or not all(c in "0123456789abcdef" for c in etag):
        return None
    return etag


def parse_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def content_range_total(value: str) -> int | None:
    """The complete length from `bytes a-b/total`, or None when it is `*` or malformed."""
    _, _, total = value.rpartition("/")
    return int(total) if total.isdigit() else None


def meta_to_bytes(meta: ObjectMeta) -> bytes:
    """JSON, not pickle: a disk tier written by one version must be readable by the next."""
    return json.dumps(
        {
            "etag": meta.etag,
            "size": meta.size,
            "last_modified": meta.last_modified,
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in meta.headers],
            "checksums": None
            if meta.checksums is None
            else [[n.decode("latin-1"), v.decode("latin-1")] for n, v in meta.checksums],
            "validated_at": meta.validated_at,
        }
    ).encode()


def meta_from_bytes(data: bytes) -> ObjectMeta | None:
    """The stored metadata, or None when the record is unreadable (treated as a miss)."""
    try:
        raw = json.loads(data)
        checksums = raw["checksums"]
        return ObjectMeta(
            etag=raw["etag"],
            size=int(raw["size"]),
            last_modified=raw["last_modified"],
            headers=_header_pairs(raw["headers"]),
            checksums=None if checksums is None else _header_pairs(checksums),
            validated_at=float(raw["validated_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _header_pairs(pairs: list[list[str]]) -> Headers:
    return tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs)
