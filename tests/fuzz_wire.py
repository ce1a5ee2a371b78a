"""What the fault tests use to reach below the HTTP clients: raw exchanges over sockets, a port
that never completes a connection, and an RSS sampler for a server process.

Clients such as requests and boto3 refuse to send most malformed requests, and they hide how a
response ended; a raw socket shows both.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

import psutil

from tests.harness import S3TierServer


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """A response as it came off the wire; `status` 0 when none came (closed, reset, timeout)."""

    status: int
    head: bytes
    body: bytes
    ending: str  # "complete", "closed", "reset" or "timeout"

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def exchange(port: int, request: bytes, timeout_s: float = 10.0) -> RawAnswer:
    """Send raw request bytes on a fresh connection and read one response (HEAD-less: a body
    is read to its Content-Length, else to the connection's end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before taking all
            sock.sendall(request)
        return read_answer(sock, head_only=request.startswith(b"HEAD "))


def read_answer(sock: socket.socket, head_only: bool = False) -> RawAnswer:
    data = b""
    ending = "closed"
    while True:
        head, found, body = data.partition(b"\r\n\r\n")
        if found:
            length = _content_length(head)
            if _status(head) in (204, 304) or 100 <= _status(head) < 200:
                length = 0  # RFC 9112 §6.3: these never have a body
            if head_only or (length is not None and len(body) >= length):
                ending = "complete"
                break
        try:
            piece = sock.recv(1 << 16)
        except TimeoutError:
            ending = "timeout"
            break
        except ConnectionResetError:
            ending = "reset"
            break
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return RawAnswer(_status(head), head, body, ending)


def _status(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def get(server: S3TierServer, path: str, *headers: str) -> RawAnswer:
    """A plain GET of a path, unsigned (the servers here run with --auth none)."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close", "", ""]
    return exchange(server.port, "\r\n".join(lines).encode())


class BlackHole:
    """A listening port whose accept queue is full, so a new connection never completes: the
    kernel drops its SYN. What an upstream behind a dead route looks like to a connect()."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)
        time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in (*self._fillers, self._listener):
            sock.close()


@dataclass
class RssSampler:
    """Samples a process's resident memory every `every_s` in a thread, between start and stop."""

    pid: int
    every_s: float = 0.02
    samples: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._process = psutil.Process(self.pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self._process.memory_info().rss

    def _run(self) -> None:
        while not self._done.is_set():
            self.samples.append(self._process.memory_info().rss)
            time.sleep(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        """Peak RSS above the baseline taken before sampling began."""
        return max([self.baseline, *self.samples]) - self.baseline
