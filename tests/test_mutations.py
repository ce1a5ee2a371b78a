"""Which objects a forwarded write invalidates: a pure table."""

from __future__ import annotations

import pytest

from proxy.mutations import delete_keys, touched
from proxy.s3request import S3Request
from tiering.blocks import ObjectId


def req(method: str, path: bytes, query: bytes = b"") -> S3Request:
    return S3Request.parse(method, path, query, {"host": "h"}, "localhost")


@pytest.mark.parametrize(
    ("method", "path", "query", "keys"),
    [
        ("PUT", b"/b/k", b"", ["k"]),
        ("PUT", b"/b/k", b"tagging", ["k"]),
        ("PUT", b"/b/k", b"acl", ["k"]),
        ("DELETE", b"/b/k", b"", ["k"]),
        ("POST", b"/b/k", b"uploadId=u", ["k"]),
        ("PUT", b"/b", b"", []),
        ("GET", b"/b/k", b"", []),
        ("HEAD", b"/b/k", b"", []),
    ],
)
def test_writes_naming_a_key_invalidate_it(
    method: str, path: bytes, query: bytes, keys: list[str]
) -> None:
    assert touched(req(method, path, query)) == [ObjectId("b", k) for k in keys]


DELETE_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Object><Key>a/1</Key></Object><Object><Key>b &amp; c</Key><VersionId>v</VersionId></Object>
  <Quiet>true</Quiet>
</Delete>"""


def test_delete_objects_invalidates_every_key_in_its_body() -> None:
    assert touched(req("POST", b"/b", b"delete"), DELETE_BODY) == [
        ObjectId("b", "a/1"),
        ObjectId("b", "b & c"),
    ]


def test_a_malformed_delete_body_names_no_keys() -> None:
    assert delete_keys(b"<Delete><Object>") == []
