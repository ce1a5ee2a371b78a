"""PutObject, written through: forwarded to the upstream, then cached under the ETag it returned.

The upstream alone decides a conditional PUT (`If-None-Match: *`, `If-Match`): its 412 or 409
reaches the client unchanged, and nothing is ever retried. The body streams to the upstream as it
arrives and is kept aside in a spool; only when the upstream has accepted it, and a HEAD confirms
that the accepted version is still the current one, do its blocks enter the cache. The client is
answered before that HEAD (`ReadThrough.adopt_written`). Any failure leaves no trace of the body
in the cache.

What the client declared (payload SHA-256, checksums, chunk signatures) is checked on the way by
`ClientBody`, which holds the last bytes back until the checks pass: a mismatched body is cut
off short and never completed upstream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

from proxy.asgi import Headers, Receive, Send, respond
from proxy.auth import Verified
from proxy.bodies import ClientBody
from proxy.errors import RequestIds, with_ids
from proxy.forward import NOT_RETURNED, upstream_headers
from proxy.s3request import BYPASS_HEADERS, NEUTRAL_QUERY, S3Request, encode_query
from tiering.blocks import ObjectId
from tiering.readthrough import ReadThrough
from tiering.spool import Spool
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable

log = logging.getLogger("s3tier.uploads")


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


async def put_object(
    req: S3Request,
    headers: Mapping[str, str],
    readthrough: ReadThrough,
    upstream: Upstream,
    spool_dir: str | None,
    max_cached_bytes: int,
    receive: Receive,
    send: Send,
    verified: Verified | None = None,
    ids: RequestIds | None = None,
) -> None:
    obj = ObjectId(req.bucket, req.key)
    length = _declared_length(headers)
    spool = Spool(spool_dir, readthrough.block_size) if 0 <= length <= max_cached_bytes else None
    body = ClientBody(headers, receive, verified, spool)
    out_headers, payload_hash = body.upstream_headers(upstream_headers(headers))
    await readthrough.invalidate(obj)
    try:
        status, answer_headers, answer = await _send(
            req, out_headers, body.stream(), payload_hash, upstream
        )
        # Invalidate again: a fill that began while the PUT was in flight must not land.
        await readthrough.invalidate(obj)
        generation = readthrough.generation(obj)
        etag = _header(answer_headers, b"etag")
        if status == 200 and spool is not None and body.complete and etag is not None:
            kept: Spool = spool
            spool = None  # adopt_written closes it, now or once confirmed
            await readthrough.adopt_written(obj, etag, kept, generation)
    except (UpstreamUnavailable, UpstreamBroken):
        await readthrough.invalidate(obj)  # it may or may not have been stored: forget the key
        if body.error is not None:
            raise body.error from None
        raise
    finally:
        if spool is not None:
            spool.close()
    if ids is not None:
        answer_headers = with_ids(answer_headers, answer, ids)
    await respond(send, status, answer_headers, answer)


async def _send(
    req: S3Request,
    out_headers: dict[str, str],
    payload: AsyncIterator[bytes],
    payload_hash: str,
    upstream: Upstream,
) -> tuple[int, Headers, bytes]:
    query = encode_query(req.query)
    async with upstream.open(
        "PUT", req.upstream_path(), query, out_headers, payload, payload_hash
    ) as response:
        answer = await response.read()
        kept = [(n, v) for n, v in response.raw_headers if n.lower() not in NOT_RETURNED]
        return response.status, kept, answer


def _declared_length(headers: Mapping[str, str]) -> int:
    """The object's length if the client declared it, else -1 (then it is not cached)."""
    text = headers.get("x-amz-decoded-content-length") or headers.get("content-length") or ""
    return int(text) if text.isdigit() else -1


def _header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
