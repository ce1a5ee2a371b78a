"""If-Range on GetObject: what the client gets through s3tier is what the upstream answers.

AWS's GetObject defines no If-Range (see proxy/preconditions.py and docs/read-path.md), so
s3tier does not judge it: a Range made conditional by If-Range is forwarded as sent, on the cold
path and on the warm one, and the upstream's answer is the client's. Each row is compared with
the same request sent to the upstream directly (moto, which serves the range whatever If-Range
says); the last test stands in an upstream that honours If-Range, as one user reports S3 does.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests

from tests.harness import S3TierServer
from tests.upstream_shim import UpstreamShim

BODY = os.urandom(10_000)
OLD_DATE = "Mon, 01 Jan 2001 00:00:00 GMT"

# (name, request headers, with {etag} and {last_modified} filled in from the object)
ROWS = [
    ("matching-etag", {"Range": "bytes=100-199", "If-Range": "{etag}"}),
    ("other-etag", {"Range": "bytes=100-199", "If-Range": '"0123456789abcdef0123456789abcdef"'}),
    ("matching-date", {"Range": "bytes=100-199", "If-Range": "{last_modified}"}),
    ("older-date", {"Range": "bytes=100-199", "If-Range": OLD_DATE}),
    ("suffix-range-other-etag", {"Range": "bytes=-50", "If-Range": '"feedface"'}),
    ("if-range-without-range", {"If-Range": '"feedface"'}),
]  # fmt: skip


def answer(response: requests.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("content-range")


def put(direct: Any, bucket: str, key: str) -> dict[str, str]:
    direct.put_object(Bucket=bucket, Key=key, Body=BODY)
    head = direct.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]
    return {"etag": head["etag"], "last_modified": head["last-modified"]}


@pytest.mark.parametrize("path", ["cold", "warm"])
@pytest.mark.parametrize(("sent",), [pytest.param(h, id=name) for name, h in ROWS])
def test_if_range_gets_what_the_upstream_answers_on_cold_and_warm_paths(
    proxy_server: S3TierServer,
    direct: Any,
    bucket: str,
    shim: UpstreamShim,
    path: str,
    sent: dict[str, str],
) -> None:
    headers = {k: v.format(**put(direct, bucket, "k")) for k, v in sent.items()}
    url = f"{proxy_server.url}/{bucket}/k"
    if path == "warm":
        assert requests.get(url).content == BODY
        assert requests.get(url).headers["x-cache-status"] == "HIT-RAM"
    upstream = requests.get(direct.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}
    ), headers=headers)  # fmt: skip
    shim.clear()
    got = requests.get(url, headers=headers)
    assert answer(got) == answer(upstream)
    if "Range" not in headers:
        # RFC 9110 §13.1.5: without a Range, If-Range means nothing: served as any GET.
        assert got.headers["x-cache-status"] == ("HIT-RAM" if path == "warm" else "MISS")
        return
    assert got.headers["x-cache-status"] == "BYPASS"
    [asked] = shim.matching("GET", f"/{bucket}/k")
    assert (asked.headers.get("Range"), asked.headers.get("If-Range")) == (
        headers["Range"],
        headers["If-Range"],
    )


def test_an_upstream_that_honours_if_range_is_what_the_client_sees(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    """With a changed validator an If-Range-honouring upstream sends the whole object (200),
    and so must s3tier, though the cache holds the object and could have cut the range."""
    put(direct, bucket, "h")
    url = f"{proxy_server.url}/{bucket}/h"
    assert requests.get(url).content == BODY  # warm
    whole = (("Content-Type", "binary/octet-stream"), ("ETag", '"new"'))
    shim.answer_next(lambda r: "If-Range" in r.headers and f"/{bucket}/h" in r.path, 200, BODY,
                     whole)  # fmt: skip
    try:
        got = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    finally:
        shim.clear_faults()
    assert (got.status_code, got.content, got.headers.get("content-range")) == (200, BODY, None)
