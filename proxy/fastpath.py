"""The hit path: a plain GET or HEAD of a one-block object held in RAM, or a GET of one range
whose blocks are all in RAM, answered from the HTTP protocol itself, before any ASGI scope,
task or coroutine exists.

A request qualifies only when the full read path would give exactly the same answer: no
conditional headers, at most one Range, no query but `x-id`, no body, keep-alive,
metadata and blocks fresh in RAM, and under `--auth sigv4` a header-signed request that
verifies and may read the key (`proxy/fastauth.py`). Every other request, and every header
this module does not know to be neutral, takes the full path (`proxy/app.py`), which also
produces every error: the checks here only ever decline, they never refuse.

The response head is rendered once per metadata version and kept beside it; a hit then costs a
dict lookup, a freshness check and one `writelines`, with only the Date and request ids varying.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from proxy.auth import Keyring
from proxy.errors import S3Error, new_host_id_bytes, new_request_id_bytes
from proxy.fastauth import fast_verify
from proxy.ranges import RangeNotSatisfiable, parse_range
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
from tiering.parts import Span
from tiering.readthrough import ReadThrough, Source
from tiering.streaming import SHORT_RESPONSE_BLOCKS

# Request headers that never change what GET/HEAD object answers (the signature headers are
# read by `fast_verify` under --auth sigv4, and not at all under --auth none). Range and
# x-amz-checksum-mode are read below; anything else declines the fast path.
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
Wire = list[bytes | memoryview]


class FastPath:
    """Answers for the plain hits described above, or None: the protocol then runs the app."""

    def __init__(
        self,
        readthrough: ReadThrough,
        base_domain: str,
        metrics: Metrics | None,
        keyring: Keyring | None = None,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._keyring = keyring  # None: --auth none
        self._region = region
        self._rt = readthrough
        self._base_domain = base_domain
        self._metrics = metrics
        self._clock = clock
        self._heads: dict[ObjectId, tuple[ObjectMeta, tuple[bytes, bytes, bytes]]] = {}
        self._addresses: dict[tuple[bytes, bytes], ObjectId | None] = {}

    def answer(
        self, method: bytes, url: bytes, headers: Sequence[tuple[bytes, bytes]], date: bytes
    ) -> Wire | None:
        started = self._clock()
        is_get = method == b"GET"
        if not is_get and method != b"HEAD":
            return None
        request = neutral_request(headers)
        if request is None:
            return None
        host, range_header, want_checksums = request
        obj = self._resolved(url, host)
        if obj is None:
            return None
        keyring = self._keyring
        if keyring is not None and not fast_verify(
            method, url, headers, keyring, self._region, obj.bucket, obj.key, time.time()
        ):
            return None
        if range_header is not None:
            if not is_get:
                return None
            wire = self._ranged(obj, range_header)
        else:
            wire = self._whole(obj, is_get, want_checksums)
        if wire is None:
            return None
        wire[1:1] = [
            b"date: ",
            date,
            b"\r\nx-amz-request-id: ",
            new_request_id_bytes(),
            b"\r\nx-amz-id-2: ",
            new_host_id_bytes(),
            b"\r\n\r\n",
        ]
        if self._metrics is not None:
            self._metrics.hits.add(OPERATIONS[method], self._clock() - started)
        return wire

    def _whole(self, obj: ObjectId, is_get: bool, want_checksums: bool) -> Wire | None:
        found = self._rt.hot(obj, is_get)
        if found is None:
            return None
        meta, body = found
        if want_checksums and meta.checksums is None:
            return None  # the full path looks them up (every boto3 GET asks for them)
        rendered = self._rendered(obj, meta)
        wire: Wire = [rendered[2] if want_checksums else rendered[1]]
        if is_get and body:
            wire.append(body)
            self._rt.account(Source.RAM, len(body))
        return wire

    def _ranged(self, obj: ObjectId, range_header: bytes) -> Wire | None:
        """A 206 of one range whose blocks (at most as many as the full path notes as one
        read) are all in RAM; the body is views of the blocks, not a copy."""
        meta = self._rt.hot_meta(obj)
        if meta is None or meta.size == 0:
            return None
        try:
            rng = parse_range(range_header.decode("latin-1"), meta.size)
        except RangeNotSatisfiable:
            return None
        if rng is None:
            return None
        size = self._rt.block_size
        first, last = rng.start // size, rng.end // size
        if last - first >= SHORT_RESPONSE_BLOCKS:
            return None
        blocks = self._rt.hot_blocks(obj, meta, first, last)
        if blocks is None:
            return None
        head = b"HTTP/1.1 206 Partial Content\r\n%scontent-range: bytes %d-%d/%d\r\n" % (
            self._rendered(obj, meta)[0], rng.start, rng.end, meta.size,
        )  # fmt: skip
        wire: Wire = [head + b"content-length: %d\r\nx-cache-status: HIT-RAM\r\n" % rng.length]
        for index, block in enumerate(blocks, first):
            base = index * size
            wire.append(memoryview(block)[max(rng.start - base, 0) : rng.end + 1 - base])
        if sum(len(piece) for piece in wire[1:]) != rng.length:
            return None  # a block shorter than the metadata says: the full path handles it
        self._rt.account(Source.RAM, rng.length)
        self._rt.note_read(obj, meta, rng.start, rng.end, Span(rng.start, rng.end))
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

    def _rendered(self, obj: ObjectId, meta: ObjectMeta) -> tuple[bytes, bytes, bytes]:
        """The object's header lines, and the whole object's 200 head up to Date and ids,
        without and with its checksums (S3 sends them only when asked, and only for the whole
        object, as `objects.response_headers` does).

        A HEAD's head is a GET's (RFC 9110 §9.3.2). Kept by metadata identity, not ETag: an
        in-place copy can change an object's headers and keep its ETag."""
        kept = self._heads.get(obj)
        if kept is not None and kept[0] is meta:
            return kept[1]
        rendered = render_fields(meta), render_head(meta, False), render_head(meta, True)
        if len(self._heads) >= MAX_HEADS:
            self._heads.clear()
        self._heads[obj] = (meta, rendered)
        return rendered


def neutral_request(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[bytes, bytes | None, bool] | None:
    """The Host, the Range and whether checksums are asked for, of a request whose every other
    header is neutral and whose header section the full path would accept (one valid Host, one
    Range and one checksum mode at most, within S3's size limit); else None."""
    host = range_header = checksum_mode = None
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name in NEUTRAL_HEADERS:
            if name == b"host":
                if host is not None:
                    return None
                host = value
        elif name == b"range" and range_header is None:
            range_header = value
        elif name == b"x-amz-checksum-mode" and checksum_mode is None:
            checksum_mode = value
        else:
            return None
    if host is None or size > HEADER_SECTION_LIMIT or not host_is_valid(host):
        return None
    return host, range_header, checksum_mode is not None and checksum_mode.upper() == b"ENABLED"


def render_fields(meta: ObjectMeta) -> bytes:
    return _lines(meta.headers)


def _lines(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in pairs)


def render_head(meta: ObjectMeta, with_checksums: bool) -> bytes:
    """Status line and headers of a 200 for the whole object, as `objects.response_headers`
    renders them, up to the per-request Date and ids (appended by the caller)."""
    fields = render_fields(meta)
    if with_checksums and meta.checksums:
        fields += _lines(meta.checksums)
    return b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\nx-cache-status: HIT-RAM\r\n" % (
        fields, meta.size,
    )  # fmt: skip
