"""Specification of proxy.errors: S3's error XML and the request ids every answer carries."""

from __future__ import annotations

import pytest

from proxy.errors import InternalError, RequestIds, render, with_ids

OWN = RequestIds("0123456789ABCDEF", "b3du")
UPSTREAM_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<RequestId>UPSTREAM1</RequestId><HostId>aG9zdA==</HostId></Error>"
)


def ids_of(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    found = dict(headers)
    assert [n for n, _ in headers].count(b"x-amz-request-id") == 1
    assert [n for n, _ in headers].count(b"x-amz-id-2") == 1
    return found[b"x-amz-request-id"], found[b"x-amz-id-2"]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # S3: header and body agree; kept.
        ([(b"x-amz-request-id", b"UPSTREAM1"), (b"x-amz-id-2", b"aG9zdA==")], UPSTREAM_XML,
         (b"UPSTREAM1", b"aG9zdA==")),
        # moto: ids in the body and x-amzn-requestid, no x-amz-id-2 header.
        ([(b"x-amzn-requestid", b"UPSTREAM1")], UPSTREAM_XML, (b"UPSTREAM1", b"aG9zdA==")),
        # A body that disagrees with its header: the header follows the body.
        ([(b"X-Amz-Request-Id", b"OTHER")], UPSTREAM_XML, (b"UPSTREAM1", b"aG9zdA==")),
        # A HEAD error: no body, the upstream's header ids.
        ([(b"x-amz-request-id", b"HEADID"), (b"x-amz-id-2", b"aWQy")], b"", (b"HEADID", b"aWQy")),
        # moto's HEAD error: only x-amzn-requestid; s3tier's own x-amz-id-2.
        ([(b"x-amzn-requestid", b"MOTOHEAD")], b"", (b"MOTOHEAD", b"b3du")),
        # Nothing from the upstream: s3tier's own.
        ([(b"content-type", b"application/xml")], b"<Error/>", (b"0123456789ABCDEF", b"b3du")),
        # An id that could break the header line is not taken from the body.
        ([], b"<RequestId>a\r\nb</RequestId>", (b"0123456789ABCDEF", b"b3du")),
    ],
)  # fmt: skip
def test_replayed_answers_keep_the_upstreams_ids_and_fill_in_what_it_left_out(
    headers: list[tuple[bytes, bytes]], body: bytes, expected: tuple[bytes, bytes]
) -> None:
    out = with_ids(headers, body, OWN)
    assert ids_of(out) == expected
    assert [(n, v) for n, v in out if n.lower() not in (b"x-amz-request-id", b"x-amz-id-2")] == [
        (n, v) for n, v in headers if n.lower() not in (b"x-amz-request-id", b"x-amz-id-2")
    ]


def test_an_own_error_document_carries_the_ids_of_its_headers() -> None:
    body = render(InternalError(), "/b/k", OWN)
    assert b"<Code>InternalError</Code>" in body
    assert b"<RequestId>0123456789ABCDEF</RequestId><HostId>b3du</HostId>" in body
    assert ids_of(OWN.headers) == (b"0123456789ABCDEF", b"b3du")
