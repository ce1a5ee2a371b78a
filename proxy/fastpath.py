"""The hit path: a plain GET or HEAD of a one-block object held in RAM, answered from the HTTP
protocol itself, before any ASGI scope, task or coroutine exists.

A request qualifies only when the full read path would give exactly the same answer: no
conditional, range or checksum headers, no query but `x-id`, no body, keep-alive, `--auth none`,
and metadata and block fresh in RAM. Every other request, and every header this module does not
know to be neutral, takes the full path (`proxy/app.py`), which also produces every error: the
checks here only ever decline, they never refuse.

The response head is rendered once per metadata version and kept beside it; a hit then costs a
dict lookup, a freshness check and one `writelines`, with only the Date and request ids varying.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from proxy.errors import S3Error, new_host_id_bytes, new_request_id_bytes
from proxy.s3request import (
    HEADER_SECTION_LIMIT,
    NEUTRAL_QUERY,
    host_is_valid,
    parse_query,
    split_address,
)
from tiering.blocks import ObjectId
from tiering.meta import ObjectMeta
from tiering.metrics import Metrics
from tiering.readthrough import ReadThrough, Source

# Request headers that never change what GET/HEAD object answers (with --auth none, the
# signature headers are not read at all). Anything else declines the fast path.
NEUTRAL_HEADERS = frozenset(
    {
        b"host",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"connection",
        b"keep-alive",
        b"authorization",
        b"x-amz-date",
        b"x-amz-content-sha256",
        b"x-amz-security-token",
        b"x-amz-user-agent",
        b"amz-sdk-invocation-id",
        b"amz-sdk-request",
    }
)
OPERATIONS = {b"GET": "get_object", b"HEAD": "head_object"}
MAX_HEADS = 1 << 14  # rendered heads kept; past it they are rendered afresh
MAX_ADDRESSES = 1 << 14  # resolved (url, host) pairs kept, likewise
Wire = list[bytes]


class FastPath:
    """Answers for the plain hits described above, or None: the protocol then runs the app."""

    def __init__(
        self,
        readthrough: ReadThrough,
        base_domain: str,
        metrics: Metrics | None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._rt = readthrough
        self._base_domain = base_domain
        self._metrics = metrics
        self._clock = clock
        self._heads: dict[ObjectId, tuple[ObjectMeta, bytes]] = {}
        self._addresses: dict[tuple[bytes, bytes], ObjectId | None] = {}

    def answer(
        self, method: bytes, url: bytes, headers: Sequence[tuple[bytes, bytes]], date: bytes
    ) -> Wire | None:
        started = self._clock()
        is_get = method == b"GET"
        if not is_get and method != b"HEAD":
            return None
        host = neutral_host(headers)
        if host is None:
            return None
        obj = self._resolved(url, host)
        if obj is None:
            return None
        found = self._rt.hot(obj, is_get)
        if found is None:
            return None
        meta, body = found
        wire = [
            self._head(obj, meta),
            b"date: ",
            date,
            b"\r\nx-amz-request-id: ",
            new_request_id_bytes(),
            b"\r\nx-amz-id-2: ",
            new_host_id_bytes(),
            b"\r\n\r\n",
        ]
        if is_get and body:
            wire.append(body)
            self._rt.account(Source.RAM, len(body))
        if self._metrics is not None:
            self._metrics.hits.add(OPERATIONS[method], self._clock() - started)
        return wire

    def _resolved(self, url: bytes, host: bytes) -> ObjectId | None:
        # The same few URLs arrive again and again: resolve each (url, host) pair once.
        pair = (url, host)
        try:
            return self._addresses[pair]
        except KeyError:
            pass
        obj = self._address(url, host)
        if len(self._addresses) >= MAX_ADDRESSES:
            self._addresses.clear()
        self._addresses[pair] = obj
        return obj

    def _address(self, url: bytes, host: bytes) -> ObjectId | None:
        path, _, query = url.partition(b"?")
        if query and any(name not in NEUTRAL_QUERY for name, _ in parse_query(query)):
            return None
        try:
            bucket, key = split_address(path, host.decode("latin-1"), self._base_domain)
        except S3Error:
            return None  # the full path answers it with its error
        if not bucket or not key:
            return None
        return ObjectId(bucket, key)

    def _head(self, obj: ObjectId, meta: ObjectMeta) -> bytes:
        # A HEAD's head is a GET's (RFC 9110 §9.3.2). Kept by metadata identity, not ETag: an
        # in-place copy can change an object's headers and keep its ETag.
        kept = self._heads.get(obj)
        if kept is not None and kept[0] is meta:
            return kept[1]
        head = render_head(meta)
        if len(self._heads) >= MAX_HEADS:
            self._heads.clear()
        self._heads[obj] = (meta, head)
        return head


def neutral_host(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The Host of a request whose every header is neutral and whose header section the full
    path would accept (one valid Host, within S3's size limit); else None."""
    host = None
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name not in NEUTRAL_HEADERS:
            return None
        if name == b"host":
            if host is not None:
                return None
            host = value
    if host is None or size > HEADER_SECTION_LIMIT or not host_is_valid(host):
        return None
    return host


def render_head(meta: ObjectMeta) -> bytes:
    """Status line and headers of a 200 for the whole object, as `objects.response_headers`
    renders them, up to the per-request Date and ids (appended by the caller)."""
    lines = [b"HTTP/1.1 200 OK"]
    lines.extend(name + b": " + value for name, value in meta.headers)
    lines.append(b"content-length: " + str(meta.size).encode())
    lines.append(b"x-cache-status: HIT-RAM")
    return b"\r\n".join(lines) + b"\r\n"
