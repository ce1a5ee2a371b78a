"""Disk hits of objects too large for RAM leave from the disk tier's files by `sendfile`, not
through Python: against a real s3tier process and a real S3 server. The bytes are the
upstream's, whole and in ranges across block edges; a client that leaves mid-body leaves no
file open behind it; a file damaged on disk before this process first opened it is never sent.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import S3TierServer, comparable

MIB = 1 << 20
SIZE = 5 * MIB + 777  # six 1 MiB blocks, the last one short


def file_bytes(server: S3TierServer) -> float:
    with urllib.request.urlopen(server.url + "/_s3tier/metrics", timeout=5) as page:
        text = page.read().decode()
    found = re.search(r"^s3tier_disk_file_bytes_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def get(server: S3TierServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, _lower(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def on_disk(server: S3TierServer, path: str, expected_file_bytes: int) -> dict[str, str]:
    """GET until the whole answer came from the disk tier's files (a miss's blocks land on disk
    just after it is answered)."""
    deadline = time.monotonic() + 20
    while True:
        before = file_bytes(server)
        status, headers, _ = get(server, path)
        sent = file_bytes(server) - before
        if headers.get("x-cache-status") == "HIT-DISK" and sent == expected_file_bytes:
            return headers
        assert time.monotonic() < deadline, (status, headers.get("x-cache-status"), sent)
        time.sleep(0.2)


@pytest.fixture
def server(start_s3tier: Callable[..., S3TierServer]) -> S3TierServer:
    # Objects over 64 KiB never enter RAM: every hit of them is a disk hit.
    return start_s3tier("--freshness", "ttl:300", "--ram-max-object", "64KiB")


def test_disk_hits_are_sent_from_files_with_the_upstreams_bytes_whole_and_in_ranges(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    body = os.urandom(SIZE)
    direct.put_object(Bucket=bucket, Key="big.bin", Body=body, ContentType="x/big")
    path = f"/{bucket}/big.bin"
    status, miss, got = get(server, path)
    assert (status, miss["x-cache-status"], got == body) == (200, "MISS", True)

    hit = on_disk(server, path, SIZE)
    assert comparable(hit) == comparable(miss)  # the miss's headers are the upstream's
    for spec in ("bytes=1000-2100000", "bytes=-5000", f"bytes={MIB}-{MIB}", f"bytes={MIB - 1}-"):
        before = file_bytes(server)
        status, headers, got = get(server, path, Range=spec)
        want = direct.get_object(Bucket=bucket, Key="big.bin", Range=spec)
        assert status == 206 and headers["x-cache-status"] == "HIT-DISK", spec
        assert got == want["Body"].read(), spec
        assert headers["content-range"] == want["ContentRange"], spec
        assert file_bytes(server) - before == len(got), spec  # every byte from a file


def open_block_files(pid: int) -> int:
    """The disk tier's value files the process holds open. (Not every descriptor: the disk
    pool opens a SQLite connection, index and journal, in each thread it starts, whenever.)"""
    folder = f"/proc/{pid}/fd"
    held = 0
    for fd in os.listdir(folder):
        with contextlib.suppress(OSError):
            held += os.readlink(os.path.join(folder, fd)).endswith(".val")
    return held


def cached_on_disk(server: S3TierServer, direct: Any, bucket: str, key: str) -> tuple[str, bytes]:
    """A new object of SIZE random bytes, read once and then held by the disk tier."""
    body = os.urandom(SIZE)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    path = f"/{bucket}/{key}"
    get(server, path)
    on_disk(server, path, SIZE)
    return path, body


def test_a_client_leaving_mid_body_leaves_no_block_file_open(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    path, body = cached_on_disk(server, direct, bucket, "left.bin")
    time.sleep(0.5)  # let the worker's connection from the last GET settle
    before = open_block_files(server.pid)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            received = 0
            while received < 200_000:
                received += len(sock.recv(65536))
    deadline = time.monotonic() + 10
    while open_block_files(server.pid) > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert open_block_files(server.pid) == before == 0
    status, _, got = get(server, path)
    assert status == 200 and got == body


def test_a_block_file_damaged_before_its_first_open_is_never_sent(
    server: S3TierServer, direct: Any, bucket: str
) -> None:
    path, body = cached_on_disk(server, direct, bucket, "damaged.bin")
    server.stop()  # the next process has opened none of the files yet
    values = sorted(Path(server.disk_dir).rglob("*.val"), key=lambda p: p.stat().st_size)
    damaged = values[-1]  # a whole 1 MiB block
    data = bytearray(damaged.read_bytes())
    data[12345] ^= 0xFF
    damaged.write_bytes(bytes(data))
    server.start()
    status, headers, got = get(server, path)
    assert status == 200 and got == body
    assert headers["x-cache-status"] in {"HIT-DISK", "MISS"}
