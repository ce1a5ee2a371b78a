"""Slow clients (issue 7, §2.10): connections that trickle their headers a byte a second neither
starve other clients nor stay open for ever, and a client that stops reading a large body does
not make the server hold the rest of it.

The header deadline is `--header-timeout` (S3TIER_HEADER_TIMEOUT); it is set through the
environment here, so a server without the setting ignores it and the deadline test fails on its
assertion rather than on start-up.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fuzz_wire import RssSampler, get
from tests.harness import S3TierServer
from tests.upstream_shim import ScriptedUpstream, pattern_bytes

MiB = 1 << 20
TRICKLERS = 200
HEADER_TIMEOUT_S = 3.0


@dataclass
class Trickler:
    sock: socket.socket
    opened: float
    sent: int = 0
    closed: float | None = None
    answer: bytes = b""


@dataclass
class Tricklers:
    """`count` connections, each sending one more byte of an endless request header every
    second from a thread, and noticing when the server closes it."""

    port: int
    count: int
    conns: list[Trickler] = field(default_factory=list)

    HEADER = b"GET /slow/loris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: " + b"a" * 4096

    def __enter__(self) -> Tricklers:
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.setblocking(False)
            self.conns.append(Trickler(sock, time.monotonic()))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        for conn in self.conns:
            conn.sock.close()

    @property
    def open(self) -> list[Trickler]:
        return [c for c in self.conns if c.closed is None]

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for conn in self.conns:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        next_byte = time.monotonic()
        while not self._done.is_set():
            for key, _ in selector.select(timeout=0.05):
                self._read(selector, key.data)
            if time.monotonic() >= next_byte:
                next_byte += 1.0
                for conn in self.open:
                    self._send(selector, conn)

    def _read(self, selector: selectors.BaseSelector, conn: Trickler) -> None:
        try:
            data = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        conn.answer += data
        if not data:
            conn.closed = time.monotonic()
            selector.unregister(conn.sock)

    def _send(self, selector: selectors.BaseSelector, conn: Trickler) -> None:
        try:
            conn.sock.send(self.HEADER[conn.sent : conn.sent + 1])
            conn.sent += 1
        except BlockingIOError:
            pass
        except OSError:
            conn.closed = time.monotonic()
            selector.unregister(conn.sock)


@pytest.fixture
def stub() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def test_200_connections_trickling_headers_do_not_stop_a_normal_client_being_served(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    server = start_s3tier()
    for index in range(10):
        direct.put_object(Bucket=bucket, Key=f"k{index}", Body=os.urandom(100_000))
    with Tricklers(server.port, TRICKLERS) as tricklers:
        time.sleep(2.0)  # every trickler has started its request
        latencies = []
        for index in range(10):  # cold, then cached
            for _ in range(2):
                started = time.monotonic()
                got = get(server, f"/{bucket}/k{index}")
                latencies.append(time.monotonic() - started)
                assert got.status == 200
        still_trickling = len(tricklers.open)
    assert still_trickling >= TRICKLERS * 0.9, "the tricklers were not there to compete"
    assert max(latencies) < 1.0, f"slowest normal GET took {max(latencies):.2f}s"


def test_connections_that_trickle_their_headers_are_closed_at_the_header_deadline(
    start_s3tier: Callable[..., S3TierServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Needs the header deadline (--header-timeout / S3TIER_HEADER_TIMEOUT).
    monkeypatch.setenv("S3TIER_HEADER_TIMEOUT", str(HEADER_TIMEOUT_S))
    server = start_s3tier()
    with Tricklers(server.port, TRICKLERS) as tricklers:
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 5.0
        while tricklers.open and time.monotonic() < deadline:
            time.sleep(0.2)
        lasted = [c.closed - c.opened for c in tricklers.conns if c.closed is not None]
        left_open = len(tricklers.open)
    assert left_open == 0, f"{left_open} of {TRICKLERS} trickling connections are still open"
    assert max(lasted) < HEADER_TIMEOUT_S + 3.0, f"one lasted {max(lasted):.1f}s"
    assert min(lasted) >= HEADER_TIMEOUT_S - 0.5, "closed before its deadline"


def test_the_header_deadline_never_cuts_a_slow_reader_whose_headers_were_prompt(
    start_s3tier: Callable[..., S3TierServer],
    stub: ScriptedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S3TIER_HEADER_TIMEOUT", "1")
    server = start_s3tier(upstream=stub.url)
    size = 4 * MiB
    stub.add_object("bkt", "slowread", size)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /bkt/slowread HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = read_slowly(sock, seconds=4.0)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == pattern_bytes(0, size)


def read_slowly(sock: socket.socket, seconds: float) -> bytes:
    """Read a 4 MiB response at a pace that makes it last about `seconds`."""
    data = b""
    rate = 4 * MiB / seconds
    started = time.monotonic()
    while True:
        piece = sock.recv(64 << 10)
        if not piece:
            return data
        data += piece
        _, found, body = data.partition(b"\r\n\r\n")
        if found and len(body) >= 4 * MiB:
            return data
        time.sleep(max(0.0, len(data) / rate - (time.monotonic() - started)))


def test_a_client_that_stops_reading_a_large_body_does_not_pin_its_memory(
    start_s3tier: Callable[..., S3TierServer], stub: ScriptedUpstream
) -> None:
    block = 8 * MiB
    server = start_s3tier(
        *("--block-size", "8MiB", "--ram-bytes", "16MiB", "--prefetch-bytes", "64MiB"),
        upstream=stub.url,
    )
    size = 256 * MiB
    stub.add_object("bkt", "paused", size)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /bkt/paused HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with RssSampler(server.pid) as rss:
            first = read_at_least(sock, 2 * MiB)
            time.sleep(6.0)  # the client stops reading; the server must stop too
        paused_growth = rss.growth
        rest = read_at_least(sock, size, first)
    body = rest.partition(b"\r\n\r\n")[2]
    assert len(body) == size and body[: 64 * MiB] == pattern_bytes(0, 64 * MiB)
    assert body[-MiB:] == pattern_bytes(size - MiB, MiB)
    # Read-ahead and prefetch may fill up while the client waits, and no more.
    bound = 4 * block + 16 * MiB + 64 * MiB + 48 * MiB
    assert paused_growth < bound, f"RSS grew {paused_growth / MiB:.0f} MiB while paused"


def read_at_least(sock: socket.socket, count: int, data: bytes = b"") -> bytes:
    """Read until `count` bytes of body (after the headers) have arrived."""
    buffer = bytearray(data)
    while True:
        head, found, _ = bytes(buffer[:8192]).partition(b"\r\n\r\n")
        if found and len(buffer) - len(head) - 4 >= count:
            return bytes(buffer)
        piece = sock.recv(1 << 20)
        if not piece:
            return bytes(buffer)
        buffer += piece
