"""The protocol's fast path answers plain RAM hits exactly as the full read path would, and
declines everything else: against a real s3tier process, with raw HTTP so that ordering,
pipelining and connection handling are seen as a client sees them."""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import S3TierServer, s3_client

VARYING = {"date", "x-amz-request-id", "x-amz-id-2"}


def fast_answers(server: S3TierServer) -> float:
    with urllib.request.urlopen(server.url + "/_s3tier/metrics", timeout=5) as page:
        text = page.read().decode()
    found = re.search(r"^s3tier_fast_path_answers_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def get(server: S3TierServer, path: str, method: str = "GET", **headers: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def same_but_ids(a: dict[str, str], b: dict[str, str]) -> None:
    assert {k: v for k, v in a.items() if k not in VARYING} == {
        k: v for k, v in b.items() if k not in VARYING
    }
    assert a.keys() >= VARYING and b.keys() >= VARYING


def without_ids(body: bytes) -> bytes:
    return re.sub(rb"<(RequestId|HostId)>[^<]*</", b"<\\1></", body)


@pytest.fixture
def server(start_s3tier: Callable[..., S3TierServer]) -> S3TierServer:
    return start_s3tier("--freshness", "ttl:60")


def test_a_ram_hit_is_answered_by_the_fast_path_exactly_as_the_full_path_answers_it(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    body = os.urandom(4096)
    direct.put_object(Bucket=bucket, Key="dir/a b.bin", Body=body, ContentType="x/y",
                      Metadata={"m": "1"})  # fmt: skip
    path = f"/{bucket}/dir/a%20b.bin"
    cold = get(server, path)
    assert (cold[0], cold[1]["x-cache-status"], cold[2]) == (200, "MISS", body)
    before = fast_answers(server)
    hit = get(server, path)
    # A matching If-Match changes nothing in the answer but takes the full path.
    full = get(server, path, **{"If-Match": hit[1]["etag"]})
    assert hit[0] == full[0] == 200 and hit[2] == full[2] == body
    assert hit[1]["x-cache-status"] == full[1]["x-cache-status"] == "HIT-RAM"
    same_but_ids(hit[1], full[1])
    head = get(server, path, "HEAD")
    full_head = get(server, path, "HEAD", **{"If-Match": hit[1]["etag"]})
    assert head[2] == b"" and head[1]["content-length"] == "4096"
    same_but_ids(head[1], full_head[1])
    deadline = time.monotonic() + 5  # the counter is synced into the metrics each second
    while fast_answers(server) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fast_answers(server) >= before + 2  # the plain GET and HEAD


def test_a_range_of_blocks_in_ram_is_answered_by_the_fast_path_as_the_full_path_answers_it(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    body = os.urandom(3 * 2**20 + 5)  # four blocks of the default 1 MiB, the last one short
    direct.put_object(Bucket=bucket, Key="big", Body=body)
    path = f"/{bucket}/big"
    assert get(server, path)[2] == body  # every block now in RAM
    etag = get(server, path, "HEAD")[1]["etag"]
    mib = 2**20
    ranges = {  # range: whether the fast path may answer it (at most two blocks)
        "bytes=10-20": True,
        f"bytes={mib - 3}-{mib + 3}": True,  # across a block boundary
        "bytes=-7": True,  # suffix: the short last block
        f"bytes={3 * mib}-": True,
        f"bytes=0-{3 * mib}": False,  # four blocks: the full path, noted block by block
        "bytes=5-2": False,  # invalid, ignored: the whole object
        "bytes=0-1,5-6": False,  # several ranges, ignored likewise
        f"bytes={len(body)}-": False,  # unsatisfiable: the full path's 416
    }
    before = fast_answers(server)
    for header in ranges:
        hit = get(server, path, Range=header)
        full = get(server, path, Range=header, **{"If-Match": etag})
        assert hit[0] == full[0] and without_ids(hit[2]) == without_ids(full[2]), header
        same_but_ids(hit[1], full[1])
        if hit[0] == 206:
            first, last = (int(n) for n in hit[1]["content-range"][6:].split("/")[0].split("-"))
            assert hit[2] == body[first : last + 1]
    expected = before + sum(ranges.values())
    deadline = time.monotonic() + 5
    while fast_answers(server) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fast_answers(server) == expected


def test_a_get_asking_for_checksums_as_every_boto3_get_does_is_answered_by_the_fast_path(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(
        Bucket=bucket, Key="summed", Body=b"with a checksum", ChecksumAlgorithm="CRC32"
    )
    s3: Any = s3_client(server.url)
    assert s3.get_object(Bucket=bucket, Key="summed")["ChecksumCRC32"]  # boto3 validated it
    path = f"/{bucket}/summed"
    asked = {"X-Amz-Checksum-Mode": "ENABLED"}
    etag = get(server, path, **asked)[1]["etag"]
    before = fast_answers(server)
    for method in ("GET", "HEAD"):
        hit = get(server, path, method, **asked)
        full = get(server, path, method, **asked, **{"If-Match": etag})
        assert hit[1]["x-amz-checksum-crc32"] == full[1]["x-amz-checksum-crc32"]
        same_but_ids(hit[1], full[1])
        assert hit[2] == full[2]
    assert "x-amz-checksum-crc32" not in get(server, path)[1]  # not asked, not sent
    assert s3.get_object(Bucket=bucket, Key="summed")["Body"].read() == b"with a checksum"
    deadline = time.monotonic() + 5
    while fast_answers(server) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fast_answers(server) == before + 4


def test_requests_the_fast_path_cannot_answer_alike_take_the_full_path(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    path = f"/{bucket}/k"
    get(server, path)
    etag = get(server, path)[1]["etag"]
    assert get(server, path, Range="bytes=2-4")[0:3:2] == (206, b"234")
    assert get(server, path, **{"If-None-Match": etag})[0] == 304
    assert get(server, path + "?versionId=null")[1]["x-cache-status"] == "BYPASS"
    assert get(server, f"/{bucket}/missing")[0] == 404
    status, headers, _ = get(server, path, **{"X-Amz-Checksum-Mode": "ENABLED"})
    assert status == 200 and headers["x-cache-status"] == "HIT-RAM"


def test_pipelined_requests_are_answered_in_order_whichever_path_answers_each(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="small", Body=b"abcdef")
    get(server, f"/{bucket}/small")
    requests = [
        f"GET /{bucket}/small HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /{bucket}/small HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n",
        f"GET /{bucket}/missing HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /{bucket}/small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall("".join(requests).encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", received)
    assert statuses == [b"200", b"206", b"404", b"200"], received.decode("latin-1")
    assert received.endswith(b"abcdef")


def test_a_write_through_the_proxy_is_seen_by_the_next_fast_path_read(
    server: S3TierServer, bucket: str
) -> None:
    s3: Any = s3_client(server.url)
    s3.create_bucket(Bucket=bucket + "-w")
    s3.put_object(Bucket=bucket + "-w", Key="v", Body=b"one")
    assert get(server, f"/{bucket}-w/v")[2] == b"one"
    assert get(server, f"/{bucket}-w/v")[2] == b"one"
    s3.put_object(Bucket=bucket + "-w", Key="v", Body=b"two!")
    assert get(server, f"/{bucket}-w/v")[2] == b"two!"
    s3.delete_object(Bucket=bucket + "-w", Key="v")
    assert get(server, f"/{bucket}-w/v")[0] == 404


def test_a_client_that_pipelines_but_does_not_read_is_not_read_without_bound(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    # Answers to a client that does not read pile up in the server; once they pass the
    # transport's high-water mark the server must stop reading requests, as the full path does.
    direct.put_object(Bucket=bucket, Key="big", Body=os.urandom(64 << 10))
    get(server, f"/{bucket}/big")
    wire = f"GET /{bucket}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 1_000_000  # 40 MB
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 3
        while sent < len(wire) and time.monotonic() < deadline:
            try:
                sent += sock.send(wire[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
    assert sent < len(wire) // 2, "the server read every request of a client that reads nothing"
    assert get(server, f"/{bucket}/big")[0] == 200


def test_an_idle_connection_is_closed_after_the_keep_alive_time_and_not_before(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="idle", Body=b"x")
    get(server, f"/{bucket}/idle")
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(f"GET /{bucket}/idle HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert sock.recv(1) == b""  # uvicorn's keep-alive time, 5 s
        idle = time.monotonic() - answered
    assert 5.0 <= idle < 6.5, f"closed after {idle:.2f}s"
