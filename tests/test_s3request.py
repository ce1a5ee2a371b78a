"""Addressing and classification of incoming requests: a pure table."""

from __future__ import annotations

import pytest

from proxy.errors import InvalidURI
from proxy.s3request import S3Request, encode_query, object_path, parse_query


def parse(
    method: str, path: bytes, query: bytes = b"", host: str = "127.0.0.1:8080", **headers: str
) -> S3Request:
    return S3Request.parse(method, path, query, {"host": host, **headers}, "localhost")


@pytest.mark.parametrize(
    ("path", "host", "bucket", "key"),
    [
        (b"/", "127.0.0.1:8080", "", ""),
        (b"/bkt", "127.0.0.1:8080", "bkt", ""),
        (b"/bkt/", "127.0.0.1:8080", "bkt", ""),
        (b"/bkt/a/b.txt", "127.0.0.1:8080", "bkt", "a/b.txt"),
        (b"/bkt/dir/", "127.0.0.1:8080", "bkt", "dir/"),
        (b"/bkt/a/../b", "127.0.0.1:8080", "bkt", "a/../b"),
        (b"/bkt/./x", "127.0.0.1:8080", "bkt", "./x"),
        (b"/bkt/a//b", "127.0.0.1:8080", "bkt", "a//b"),
        (b"/bkt/100%25.txt", "127.0.0.1:8080", "bkt", "100%.txt"),
        (b"/bkt/100%2525.txt", "127.0.0.1:8080", "bkt", "100%25.txt"),
        (b"/bkt/a+b%20c", "127.0.0.1:8080", "bkt", "a+b c"),
        (b"/bkt/a%2Fb", "127.0.0.1:8080", "bkt", "a/b"),
        (b"/bkt/%E6%97%A5", "127.0.0.1:8080", "bkt", "日"),
        (b"/key.txt", "bkt.localhost:8080", "bkt", "key.txt"),
        (b"/", "bkt.localhost", "bkt", ""),
        (b"/a/b", "my.dotted.bucket.localhost:8080", "my.dotted.bucket", "a/b"),
        (b"/bkt/k", "localhost:8080", "bkt", "k"),
        (b"/bkt/k", "[::1]:8080", "bkt", "k"),
    ],
)
def test_path_and_virtual_host_addressing(path: bytes, host: str, bucket: str, key: str) -> None:
    req = parse("GET", path, host=host)
    assert (req.bucket, req.key) == (bucket, key)


def test_invalid_utf8_in_path_is_invalid_uri() -> None:
    with pytest.raises(InvalidURI):
        parse("GET", b"/bkt/%FF%FE")


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "cacheable"),
    [
        ("GET", b"/b/k", b"", {}, True),
        ("HEAD", b"/b/k", b"", {}, True),
        ("GET", b"/b/k", b"x-id=GetObject", {}, True),
        ("GET", b"/b/k", b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab", {}, True),
        ("GET", b"/b/k", b"versionId=v1", {}, False),
        ("GET", b"/b/k", b"partNumber=1", {}, False),
        ("GET", b"/b/k", b"response-content-type=text%2Fplain", {}, False),
        ("GET", b"/b/k", b"tagging", {}, False),
        ("GET", b"/b/k", b"acl", {}, False),
        ("GET", b"/b/", b"", {}, False),
        ("GET", b"/", b"", {}, False),
        ("PUT", b"/b/k", b"", {}, False),
        ("DELETE", b"/b/k", b"", {}, False),
        ("GET", b"/b/k", b"", {"x-amz-server-side-encryption-customer-algorithm": "AES256"}, False),
        ("GET", b"/b/k", b"", {"x-amz-request-payer": "requester"}, False),
    ],
)
def test_only_plain_object_reads_are_cacheable(
    method: str, path: bytes, query: bytes, headers: dict[str, str], cacheable: bool
) -> None:
    assert parse(method, path, query, **headers).cacheable is cacheable


def test_presigned_parameters_are_never_forwarded() -> None:
    req = parse("GET", b"/b/k", b"X-Amz-Signature=ab&X-Amz-Credential=c&versionId=v")
    assert req.query == (("versionId", "v"),)


def test_query_plus_is_a_plus_not_a_space() -> None:
    assert parse_query(b"prefix=a+b&marker=c%20d&flag") == [
        ("prefix", "a+b"),
        ("marker", "c d"),
        ("flag", ""),
    ]


def test_query_is_encoded_canonically_and_sorted() -> None:
    assert encode_query((("prefix", "a b/c"), ("delimiter", "/"), ("acl", ""))) == (
        "acl=&delimiter=%2F&prefix=a%20b%2Fc"
    )


@pytest.mark.parametrize(
    ("bucket", "key", "path"),
    [
        ("b", "a/../x", "/b/a/../x"),
        ("b", "100%.txt", "/b/100%25.txt"),
        ("b", "a b+c", "/b/a%20b%2Bc"),
        ("b", "日", "/b/%E6%97%A5"),
        ("b", "~user/x", "/b/~user/x"),
        ("b", "", "/b"),
        ("", "", "/"),
    ],
)
def test_upstream_path_encodes_each_byte_once(bucket: str, key: str, path: str) -> None:
    assert object_path(bucket, key) == path


def test_resource_names_what_was_asked_for() -> None:
    assert parse("GET", b"/b/k/x").resource == "/b/k/x"
    assert parse("GET", b"/b").resource == "/b"
    assert parse("GET", b"/").resource == "/"
