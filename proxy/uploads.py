"""PutObject, written through: forwarded to the upstream, then cached under the ETag it returned.

The upstream alone decides a conditional PUT (`If-None-Match: *`, `If-Match`): its 412 or 409
reaches the client unchanged, and nothing is ever retried. The body streams to the upstream as it
arrives and is kept aside in a spool; only when the upstream has accepted it, and a HEAD confirms
that the accepted version is still the current one, do its blocks enter the cache. Any failure
leaves no trace of the body in the cache.

The proxy checks what the client declared before the upstream can store it: the payload's
SHA-256 (`x-amz-content-sha256`), and the last bytes are held back until that check passes, so a
mismatched body is cut off short and never completed upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from proxy.asgi import Headers, Receive, Send, respond
from proxy.errors import S3Error, XAmzContentSHA256Mismatch
from proxy.forward import NOT_RETURNED, payload_hash, request_body, upstream_headers
from proxy.s3request import BYPASS_HEADERS, NEUTRAL_QUERY, S3Request, encode_query
from tiering.blocks import ObjectId
from tiering.readthrough import ReadThrough
from tiering.spool import Spool
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable

log = logging.getLogger("s3tier.uploads")
_HEX_SHA256 = frozenset("0123456789abcdef")


def is_put_object(req: S3Request, headers: Mapping[str, str]) -> bool:
    """A plain PutObject: not a copy, a part, a tagging or ACL change, nor encrypted with SSE-C."""
    return (
        req.method == "PUT"
        and bool(req.bucket)
        and bool(req.key)
        and all(name in NEUTRAL_QUERY for name, _ in req.query)
        and "x-amz-copy-source" not in headers
        and not any(h in headers for h in BYPASS_HEADERS)
    )


@dataclass(slots=True)
class CheckedBody:
    """The client's body on its way upstream: checked, spooled, and its tail held back."""

    receive: Receive
    spool: Spool | None
    declared_sha256: str | None
    error: S3Error | None = None
    complete: bool = False
    _sha: hashlib._Hash = field(default_factory=hashlib.sha256)

    async def stream(self) -> AsyncIterator[bytes]:
        held = b""
        async for piece in request_body(self.receive):
            if held:
                yield held
            held = await self._take(piece)
        self._verify()
        if held:
            yield held
        self.complete = True

    async def _take(self, piece: bytes) -> bytes:
        if self.declared_sha256 is not None:
            self._sha.update(piece)
        if self.spool is not None:
            await self.spool.write(piece)
        return piece

    def _verify(self) -> None:
        if self.declared_sha256 is None:
            return
        if not hmac.compare_digest(self._sha.hexdigest(), self.declared_sha256):
            self.error = XAmzContentSHA256Mismatch(
                ClientComputedContentSHA256=self.declared_sha256,
                S3ComputedContentSHA256=self._sha.hexdigest(),
            )
            raise self.error


async def put_object(
    req: S3Request,
    headers: Mapping[str, str],
    scope_headers: Headers,
    readthrough: ReadThrough,
    upstream: Upstream,
    spool_dir: str | None,
    max_cached_bytes: int,
    receive: Receive,
    send: Send,
) -> None:
    obj = ObjectId(req.bucket, req.key)
    declared = headers.get("x-amz-content-sha256")
    length = int(headers.get("content-length", "-1") or -1)
    cache_it = 0 <= length <= max_cached_bytes
    spool = Spool(spool_dir, readthrough.block_size) if cache_it else None
    body = CheckedBody(receive, spool, declared if _is_hex_sha256(declared) else None)
    out_headers = upstream_headers(scope_headers)
    sha_for_upstream = payload_hash(out_headers.pop("x-amz-content-sha256-client", None), True)
    await readthrough.invalidate(obj)
    try:
        status, answer_headers, answer = await _send(
            req, out_headers, body, sha_for_upstream, upstream
        )
        # Invalidate again: a fill that began while the PUT was in flight must not land.
        await readthrough.invalidate(obj)
        generation = readthrough.generation(obj)
        if status == 200 and spool is not None and body.complete:
            etag = _header(answer_headers, b"etag")
            if etag is not None:
                await _adopt(readthrough, obj, etag, spool, generation)
    except (UpstreamUnavailable, UpstreamBroken):
        await readthrough.invalidate(obj)
        if body.error is not None:
            raise body.error from None
        raise
    finally:
        if spool is not None:
            spool.close()
    await respond(send, status, answer_headers, answer)


async def _send(
    req: S3Request,
    out_headers: dict[str, str],
    body: CheckedBody,
    sha_for_upstream: str,
    upstream: Upstream,
) -> tuple[int, Headers, bytes]:
    query = encode_query(req.query)
    async with upstream.open(
        "PUT", req.upstream_path(), query, out_headers, body.stream(), sha_for_upstream
    ) as response:
        answer = await response.read()
        kept = [(n, v) for n, v in response.raw_headers if n.lower() not in NOT_RETURNED]
        return response.status, kept, answer


async def _adopt(
    readthrough: ReadThrough, obj: ObjectId, etag: str, spool: Spool, generation: int
) -> None:
    """Cache the accepted body, with the headers a GET would carry, which only a HEAD can tell
    (Last-Modified, checksums). If the HEAD names another version, a later write won: skip."""
    try:
        meta = await readthrough.describe(obj)
    except (UpstreamUnavailable, UpstreamBroken, S3Error) as exc:
        log.warning("not caching %s/%s after PUT: %s", obj.bucket, obj.key, exc)
        return
    if meta is None or meta.etag != etag or meta.size != spool.size:
        return
    await readthrough.adopt(obj, meta, spool.blocks(), generation)


def _is_hex_sha256(value: str | None) -> bool:
    return value is not None and len(value) == 64 and set(value) <= _HEX_SHA256


def _header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
