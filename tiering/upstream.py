"""The upstream tier: signed HTTP requests to the real S3 endpoint.

aiohttp rather than httpx, for two measured reasons (docs/upstream-client.md): httpx removes
`..` segments from URL paths, which would make `a/../b` fetch `b`, and it moved several times
fewer requests per second on this path. The choice stays inside this file.

Third-party exceptions are translated here, once: `UpstreamUnavailable` before an answer
arrived, `UpstreamBroken` when an answer stopped half-way. `UpstreamAnswer` is the upstream's
own refusal, kept whole for `proxy/errors.py` to replay verbatim.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from tiering.metrics import Metrics
from tiering.signing import EMPTY_SHA256, Signer

Headers = tuple[tuple[bytes, bytes], ...]
ERROR_BODY_LIMIT = 1 << 20


class UpstreamUnavailable(Exception):
    """No answer: refused, reset before the status line, or timed out."""


class UpstreamBroken(Exception):
    """An answer started but its body did not arrive whole."""


@dataclass(slots=True)
class UpstreamAnswer(Exception):
    """A non-success answer from the upstream, kept whole so it can be replayed verbatim."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = field(default=b"")


def object_path(bucket: str, key: str) -> str:
    """The path-style path of an object, encoded the way SigV4 canonicalises it."""
    if not bucket:
        return "/"
    # SigV4 for S3: every byte but the unreserved set is %-encoded; '/' stays as a separator.
    encoded_key = quote(key, safe="/~")
    return f"/{quote(bucket, safe='')}/{encoded_key}" if key or encoded_key else f"/{bucket}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete, small upstream answer: a block, a HEAD, or an error document."""

    status: int
    headers: Headers
    body: bytes
    cached: bool = False  # a fleet member answered from its tiers, not from the upstream

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None


class Sink(Protocol):
    """Where a body goes as it arrives (tiering/arrival.py)."""

    def write(self, piece: bytes) -> None: ...


Into = Callable[[Answer], Sink | None]


@contextmanager
def _map_errors(answered: bool = True) -> Iterator[None]:
    """aiohttp's exceptions as ours. Before the status line a failure means no answer at all
    (safe to retry a read); after it, the answer broke off."""
    try:
        yield
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        error = UpstreamBroken if answered else UpstreamUnavailable
        raise error(str(exc) or type(exc).__name__) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(str(exc) or type(exc).__name__) from exc


class Upstream:
    """One S3 endpoint, addressed path-style, every request signed."""

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        session: aiohttp.ClientSession,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._base = base_url.rstrip("/")
        self._host = URL(self._base).raw_authority
        self._signer = signer
        self._session = session

    async def fetch(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        limit: int,
        query: str = "",
        operation: str = "get_block",
        into: Into | None = None,
    ) -> Answer:
        """Send a bodiless request and read its whole answer, at most `limit` bytes of body.
        With `into`, which is shown the status and headers first: if it returns a sink, the
        body goes there as it arrives, and the answer returned has none."""
        async with self.open(
            method, path, query, headers, None, EMPTY_SHA256, operation
        ) as response:
            declared = response.content_length
            has_body = method != "HEAD" and response.status not in (204, 304)
            heard = Answer(response.status, tuple(response.raw_headers), b"")
            sink = into(heard) if into is not None and has_body else None
            if sink is not None:
                async for piece in read_chunks(response, 1 << 16):
                    sink.write(piece)
                    # A body already buffered would otherwise be read to its end before the
                    # sink's readers run: let them send each piece as it lands.
                    await asyncio.sleep(0)
                return heard
            if has_body and declared is not None and declared <= limit:
                body = await _read_into(response, declared)
            else:
                body = await _read_joined(response, limit)
            return Answer(heard.status, heard.headers, body)

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: AsyncIterable[bytes] | bytes | None,
        payload_hash: str,
        operation: str = "forward",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streaming exchange: the caller reads `response.content` and must finish inside.
        Counted in the metrics as `operation`, from the request to the end of the body."""
        url = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
        headers["host"] = self._host
        signed = self._signer.sign(method, url, headers, payload_hash)
        started = time.perf_counter()
        received = 0
        try:
            with _map_errors(answered=False):
                response = await self._session.request(
                    method, URL(url, encoded=True), headers=signed, data=body, allow_redirects=False
                )
            try:
                if response.status >= 500:
                    self._error("slow_down" if response.status == 503 else "status_5xx")
                with _map_errors():
                    yield response
            finally:
                received = response.content.total_bytes
                response.release()
        except UpstreamUnavailable:
            self._error("unavailable")
            raise
        except UpstreamBroken:
            self._error("broken")
            raise
        finally:
            if self._metrics is not None:
                self._metrics.upstream(operation, received, time.perf_counter() - started)

    def _error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.upstream_error(kind)


async def _read_into(response: aiohttp.ClientResponse, size: int) -> bytes:
    """A body of known length, read into one buffer: a block is held once, not as its pieces
    plus their joined copy (twice the block, for every fetch in flight). The buffer is handed
    on as it is; everything downstream only reads it."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    async for piece in read_chunks(response, size - filled or 1):
        if filled + len(piece) > size:
            raise UpstreamBroken(f"answer longer than its Content-Length {size}")
        view[filled : filled + len(piece)] = piece
        filled += len(piece)
    if filled != size:
        raise UpstreamBroken(f"answer shorter than its Content-Length {size}")
    view.release()
    return buffer  # type: ignore[return-value]  # read-only from here on, like bytes


async def _read_joined(response: aiohttp.ClientResponse, limit: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    async for piece in read_chunks(response, limit + 1):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise UpstreamBroken(f"answer larger than the {limit} bytes asked for")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def read_chunks(response: aiohttp.ClientResponse, size: int) -> AsyncIterator[bytes]:
    """The response body in pieces of up to `size` bytes, with errors translated."""
    while True:
        with _map_errors():
            chunk = await response.content.read(size)
        if not chunk:
            return
        yield chunk


def new_session(
    connect_timeout_s: float, read_timeout_s: float, verify: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    """The one pooled session the proxy uses; decompression off, so bodies pass through raw.
    `verify`: how https servers are verified (None: the system's trust store)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, ttl_dns_cache=300, ssl=verify or True),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=read_timeout_s
        ),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )
    # aiohttp resends a PUT or DELETE once when a reused connection fails (RFC 9112 allows it
    # for idempotent methods), but a resent conditional write can fail although the first one
    # won. The proxy never retries writes; its reads are retried where that is safe
    # (UpstreamReads._call). There is no public switch: tests/test_faults_upstream.py pins this.
    session._retry_connection = False
    return session
