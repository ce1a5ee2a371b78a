"""Grants decide what a principal may touch, before any cache tier is consulted."""

from __future__ import annotations

import pytest

from proxy.access import authorize
from proxy.auth import Grant, Principal
from proxy.errors import AccessDenied
from proxy.s3request import S3Request

READER = Principal("AK", "secret", (Grant("assets", "public/", "read"),))
WRITER = Principal(
    "AK2", "secret", (Grant("assets", "", "read-write"), Grant("*", "shared/", "read"))
)
ROOT = Principal("AK3", "secret", None)


def req(method: str, path: bytes, query: bytes = b"") -> S3Request:
    return S3Request.parse(method, path, query, {"host": "h"}, "localhost")


@pytest.mark.parametrize(
    ("principal", "method", "path", "query", "headers", "allowed"),
    [
        (READER, "GET", b"/assets/public/a.png", b"", {}, True),
        (READER, "HEAD", b"/assets/public/a.png", b"", {}, True),
        (READER, "GET", b"/assets/private/a.png", b"", {}, False),
        (READER, "PUT", b"/assets/public/a.png", b"", {}, False),
        (READER, "GET", b"/other/public/a.png", b"", {}, False),
        (READER, "GET", b"/assets", b"prefix=public%2Fx", {}, True),
        (READER, "GET", b"/assets", b"", {}, False),
        (READER, "GET", b"/", b"", {}, False),
        (WRITER, "PUT", b"/assets/x", b"", {}, True),
        (WRITER, "DELETE", b"/assets/x", b"", {}, True),
        (WRITER, "GET", b"/any/shared/x", b"", {}, True),
        (WRITER, "PUT", b"/any/shared/x", b"", {}, False),
        (WRITER, "PUT", b"/assets/copy", b"", {"x-amz-copy-source": "/any/shared/src"}, True),
        (WRITER, "PUT", b"/assets/copy", b"", {"x-amz-copy-source": "/secret/src"}, False),
        (ROOT, "GET", b"/", b"", {}, True),
        (ROOT, "PUT", b"/anything/x", b"", {}, True),
    ],
)
def test_grants_cover_exactly_what_they_name(
    principal: Principal,
    method: str,
    path: bytes,
    query: bytes,
    headers: dict[str, str],
    allowed: bool,
) -> None:
    if allowed:
        authorize(req(method, path, query), headers, principal)
    else:
        with pytest.raises(AccessDenied):
            authorize(req(method, path, query), headers, principal)
