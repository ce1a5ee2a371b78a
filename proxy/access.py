"""What a verified principal may do with a request: grants checked the same on hits and misses.

S3 cannot be asked on a cache hit, so these rules are the boundary: they run before any tier is
looked at, for every request, including each one that joins a coalesced fetch. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from proxy.auth import Principal
from proxy.errors import AccessDenied
from proxy.s3request import S3Request

READ_METHODS = frozenset({"GET", "HEAD"})


def authorize(req: S3Request, headers: Mapping[str, str], principal: Principal) -> None:
    """Raise AccessDenied unless the principal's grants cover what the request touches."""
    if principal.grants is None:
        return
    for bucket, key, write in touched_by(req, headers):
        if not bucket or not principal.allows(bucket, key, write):
            raise AccessDenied()


def touched_by(req: S3Request, headers: Mapping[str, str]) -> list[tuple[str, str, bool]]:
    """(bucket, key or listing prefix, write?) for everything a request reads or writes.
    ListBuckets touches bucket "", which only an unrestricted principal may."""
    write = req.method not in READ_METHODS
    if req.key:
        touched = [(req.bucket, req.key, write)]
    else:
        prefix = next((v for k, v in req.query if k == "prefix"), "")
        touched = [(req.bucket, prefix, write)]
    source = headers.get("x-amz-copy-source")
    if source:
        bucket, _, key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
        touched.append((bucket, key, False))
    return touched
