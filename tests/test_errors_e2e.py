"""Error answers as S3 sends them: request id headers on every one, equal to the body's
RequestId, and one catch-all for what nothing expected.

The upstream is the real moto server (through the recording shim); s3tier runs as a process.
The in-process tests at the end call the ASGI entry point and the catch-all directly.
"""

from __future__ import annotations

import asyncio
import logging
import re
from itertools import count
from typing import Any, cast

import pytest
import requests
from prometheus_client import CollectorRegistry

from proxy.app import Components, Exchange, Tracked, _unexpected, handle
from proxy.asgi import Message
from proxy.errors import RequestIds
from tests.harness import S3TierServer
from tests.upstream_shim import UpstreamShim
from tiering.metrics import Metrics

_REQUEST_ID = re.compile(r"<RequestId>([^<]*)</RequestId>")


def body_request_id(text: str) -> str | None:
    found = _REQUEST_ID.search(text)
    return found.group(1) if found else None


# (name, method, path under the test bucket, request headers, status, Code)
UPSTREAM_ERRORS = [
    ("get-missing-key", "GET", "/absent", {}, 404, "NoSuchKey"),
    ("get-missing-key-suffix-range", "GET", "/absent", {"Range": "bytes=-5"}, 404, "NoSuchKey"),
    ("head-missing-key", "HEAD", "/absent", {}, 404, None),
    ("list-objects-missing-bucket", "GET", "-gone?list-type=2", {}, 404, "NoSuchBucket"),
    ("put-object-missing-bucket", "PUT", "-gone/k", {}, 404, "NoSuchBucket"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [pytest.param(*row[1:], id=row[0]) for row in UPSTREAM_ERRORS],
)
def test_an_upstream_error_reaches_the_client_with_the_upstreams_request_ids(
    proxy_server: S3TierServer,
    bucket: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    data = b"abc" if method == "PUT" else None
    got = requests.request(method, f"{proxy_server.url}/{bucket}{path}", headers=headers, data=data)
    assert got.status_code == status
    request_id = got.headers["x-amz-request-id"]
    assert got.headers["x-amz-id-2"]
    # The upstream's own id passes through (moto spells its header x-amzn-requestid).
    assert request_id == got.headers["x-amzn-requestid"]
    if code is None:
        assert got.content == b""
        return
    assert f"<Code>{code}</Code>" in got.text
    assert body_request_id(got.text) == request_id


def test_an_upstream_error_without_ids_gets_s3tiers_and_keeps_its_own_body(
    proxy_server: S3TierServer, bucket: str, shim: UpstreamShim
) -> None:
    """A scripted 503 SlowDown whose document has a RequestId but whose headers carry none."""
    from tests.upstream_shim import SLOW_DOWN

    wanted = f"/{bucket}-busy"
    shim.answer_next(lambda r: r.path.startswith(wanted), 503, SLOW_DOWN, times=None)
    try:
        got = requests.get(f"{proxy_server.url}{wanted}?list-type=2")
    finally:
        shim.clear_faults()
    assert (got.status_code, got.content) == (503, SLOW_DOWN)
    assert got.headers["x-amz-request-id"] == body_request_id(got.text) == "SCRIPTED0000000"
    assert got.headers["x-amz-id-2"] == "c2NyaXB0ZWQ="


def test_s3tiers_own_errors_carry_both_ids_and_head_ones_have_no_body(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="short", Body=b"abc")
    for method in ("GET", "HEAD"):
        got = requests.request(
            method, f"{proxy_server.url}/{bucket}/short", headers={"Range": "bytes=10-"}
        )
        assert got.status_code == 416
        assert got.headers["x-amz-id-2"]
        if method == "GET":
            assert body_request_id(got.text) == got.headers["x-amz-request-id"]
            assert got.headers["x-amz-id-2"] in got.text
        else:
            assert got.content == b"" and got.headers["x-amz-request-id"]


def test_a_forwarded_success_carries_request_ids_too(
    proxy_server: S3TierServer, bucket: str
) -> None:
    got = requests.get(f"{proxy_server.url}/{bucket}?list-type=2")
    assert got.status_code == 200
    assert got.headers["x-amz-request-id"] and got.headers["x-amz-id-2"]


def test_an_object_replaced_again_while_its_read_is_retried_is_an_internal_error_logged_once(
    start_s3tier: Any, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    """A suffix range resolves with a HEAD, then fetches its block pinned by If-Match. The shim
    replaces the object upstream just before each pinned fetch, so the first attempt and its
    one retry both find it changed (ObjectChanged twice): nothing expected that."""
    server = start_s3tier()
    direct.put_object(Bucket=bucket, Key="k", Body=b"v0" * 500)
    versions = count(1)

    def replace() -> None:
        direct.put_object(Bucket=bucket, Key="k", Body=f"v{next(versions)}".encode() * 500)

    def pinned(r: Any) -> bool:
        return r.method == "GET" and f"/{bucket}/k" in r.path and "If-Match" in r.headers

    shim.before_next(pinned, replace, times=2)
    try:
        got = requests.get(f"{server.url}/{bucket}/k", headers={"Range": "bytes=-100"})
    finally:
        shim.clear_faults()
    assert next(versions) == 3, "the object was not replaced twice"
    assert got.status_code == 500
    assert "<Code>InternalError</Code>" in got.text
    assert body_request_id(got.text) == got.headers["x-amz-request-id"]
    assert got.headers["x-amz-id-2"] in got.text
    assert got.headers["connection"] == "close"
    log = server.log_text()
    # One log event with the traceback (chained: the retry's ObjectChanged during the first's),
    # and uvicorn never saw an exception to log again.
    assert log.count("unexpected ObjectChanged answering GET") == 1, log
    assert "Exception in ASGI application" not in log and "UnboundLocalError" not in log
    metrics = requests.get(f"{server.url}/_s3tier/metrics").text
    assert 's3tier_unexpected_errors_total{operation="get_object"} 1.0' in metrics
    assert 's3tier_requests_total{operation="get_object",status_class="5xx"} 1.0' in metrics
    again = requests.get(f"{server.url}/{bucket}/k", headers={"Range": "bytes=-4"})
    assert (again.status_code, again.content) == (206, b"v2v2")


# -- in process ------------------------------------------------------------------------------


def _scope(path: bytes, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http", "method": "GET", "path": path.decode(), "raw_path": path,
        "query_string": query, "headers": [(b"host", b"localhost")], "http_version": "1.1",
    }  # fmt: skip


async def _call(components: Components, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await handle(components, scope, receive, send)
    return sent


def test_a_bug_inside_a_request_is_answered_with_internal_error_xml_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Components wired without a read-through (a composition-root bug): the forwarded listing
    fails on it with an AttributeError, which only the catch-all can answer."""
    metrics = Metrics(CollectorRegistry())
    components = Components(cast(Any, None), cast(Any, None), "", metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="s3tier.app"):
        sent = asyncio.run(_call(components, _scope(b"/bkt", b"list-type=2")))
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 500
    assert b"<Code>InternalError</Code>" in body["body"]
    assert b"<RequestId>" + headers[b"x-amz-request-id"] + b"</RequestId>" in body["body"]
    assert b"<HostId>" + headers[b"x-amz-id-2"] + b"</HostId>" in body["body"]
    assert b"<Resource>/bkt</Resource>" in body["body"]
    assert headers[b"connection"] == b"close"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and record.exc_info[0] is AttributeError
    sample = metrics.registry.get_sample_value
    assert sample("s3tier_unexpected_errors_total", {"operation": "list"}) == 1
    assert sample("s3tier_requests_total", {"operation": "list", "status_class": "5xx"}) == 1


def test_an_error_after_the_answer_began_sends_nothing_more_so_the_connection_closes() -> None:
    """Once the status line is out, the catch-all sends no final body message: the server
    then closes the connection, and the short body cannot pass for a whole one."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        tracked = Tracked(send)
        await tracked({"type": "http.response.start", "status": 200, "headers": []})
        await tracked({"type": "http.response.body", "body": b"half", "more_body": True})
        exchange = Exchange("GET", "/b/k", RequestIds.new(), operation="get_object")
        await _unexpected(RuntimeError("bug"), exchange, tracked, metrics)

    metrics = Metrics(CollectorRegistry())
    asyncio.run(scenario())
    assert [m.get("more_body", False) for m in sent] == [False, True]  # start, the half body
    counted = metrics.registry.get_sample_value(
        "s3tier_unexpected_errors_total", {"operation": "get_object"}
    )
    assert counted == 1
