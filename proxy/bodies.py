"""A client's request body on its way upstream: unframed, checked, and its tail held back.

Bodies come in every shape clients send: Content-Length or Transfer-Encoding: chunked (the
server unframes those), and `aws-chunked` in its three variants (this module unframes those,
with `proxy.chunked`). The upstream always receives the payload the client meant, never chunk
framing, signed with the proxy's own identity:

    client sends                          upstream receives
    plain body                            the same body, the same payload hash
    aws-chunked, no checksum trailer      plain body, Content-Length = decoded length
    aws-chunked + checksum trailer        unsigned aws-chunked with the same trailer, so the
                                          upstream stores the checksum the client declared

What the client declared is checked before the upstream can complete the object: the payload's
SHA-256, an x-amz-checksum-* header or trailer, and chunk signatures when the proxy holds the
client's secret. The last bytes are held back until those checks pass; on failure the upstream
request is cut short, so it stores nothing, and the client gets S3's error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping

from proxy.asgi import Receive
from proxy.auth import Verified
from proxy.checksums import ALGORITHMS, Checksummer, verify_trailer_checksum
from proxy.chunked import MODES, SIGNED, ChunkSigning, Decoder
from proxy.errors import InvalidRequest, S3Error, XAmzContentSHA256Mismatch
from tiering.signing import UNSIGNED_PAYLOAD
from tiering.spool import Spool

UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
RECHUNK_BYTES = 64 << 10  # chunk size of re-framed bodies, so their length is known upfront
CHECKSUM_HEADER = "x-amz-checksum-"
_HEX = frozenset("0123456789abcdef")


class ClientBody:
    """One request body. Read `stream()` once; `error` holds the S3 error that cut it short."""

    def __init__(
        self,
        headers: Mapping[str, str],
        receive: Receive,
        verified: Verified | None = None,
        spool: Spool | None = None,
    ) -> None:
        self._receive = receive
        self._spool = spool
        declared = headers.get("x-amz-content-sha256", "")
        self._mode = declared if declared in MODES else None
        self._sha = hashlib.sha256() if _is_hex_sha256(declared) else None
        self._declared_sha = declared
        self._checksums = _declared_checksums(headers, self._mode)
        self._header_values = {n: v for n, v in headers.items() if n in self._checksums}
        self._trailer_names = _names(headers.get("x-amz-trailer", ""))
        self._decoded_length = _int(headers.get("x-amz-decoded-content-length"))
        if self._mode is not None and self._decoded_length is None:
            # The upstream must be told the object's length before the body arrives.
            raise InvalidRequest("x-amz-decoded-content-length is required with aws-chunked.")
        self._signing = (
            _chunk_signing(verified) if self._mode in (SIGNED, SIGNED + "-TRAILER") else None
        )
        self.error: S3Error | None = None
        self.complete = False
        self.size = 0
        self._trailers: dict[str, str] = {}

    def upstream_headers(self, headers: dict[str, str]) -> tuple[dict[str, str], str]:
        """The headers to send upstream for this body, and the payload hash to sign with."""
        if self._mode is None:
            hashed = self._declared_sha if self._sha is not None else UNSIGNED_PAYLOAD
            return headers, hashed
        out = {
            k: v
            for k, v in headers.items()
            if k not in ("x-amz-decoded-content-length", "x-amz-trailer")
        }
        encoding = [e.strip() for e in headers.get("content-encoding", "").split(",")]
        kept = [e for e in encoding if e and e.lower() != "aws-chunked"]
        out.pop("content-encoding", None)
        if kept:
            out["content-encoding"] = ",".join(kept)
        length = self._decoded_length or 0
        checksum = self._trailer_checksum_name()
        if checksum is None:
            out["content-length"] = str(length)
            return out, UNSIGNED_PAYLOAD
        out["content-encoding"] = ",".join(["aws-chunked", *kept])
        out["x-amz-decoded-content-length"] = str(length)
        out["x-amz-trailer"] = checksum
        out["content-length"] = str(_rechunked_length(length, checksum, self._trailer_value_len()))
        return out, UNSIGNED_TRAILER

    async def stream(self) -> AsyncIterator[bytes]:
        """The bytes for the upstream, as they become safe to send."""
        try:
            async for piece in self._checked():
                yield piece
        except S3Error as exc:
            self.error = exc
            raise

    async def _checked(self) -> AsyncIterator[bytes]:
        if self._mode is not None and self._trailer_checksum_name() is not None:
            async for piece in self._rechunk(self._payload()):
                yield piece
        else:
            async for piece in self._payload():
                yield piece
        self.complete = True

    async def _payload(self) -> AsyncIterator[bytes]:
        """Decoded payload, checked, each piece spooled; the last piece waits for the checks."""
        decoder = (
            Decoder(self._mode, self._decoded_length, self._signing, self._trailer_names)
            if self._mode
            else None
        )
        held = b""
        async for raw in _received(self._receive):
            for piece in decoder.feed(raw) if decoder else (raw,):
                if held:
                    yield held
                held = await self._take(piece)
        if decoder is not None:
            self._trailers = decoder.finish()
        self._verify()
        if held:
            yield held

    async def _take(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self._sha is not None:
            self._sha.update(piece)
        for checksummer in self._checksums.values():
            checksummer.update(piece)
        if self._spool is not None:
            await self._spool.write(piece)
        return piece

    def _verify(self) -> None:
        if self._sha is not None and not hmac.compare_digest(
            self._sha.hexdigest(), self._declared_sha
        ):
            raise XAmzContentSHA256Mismatch(
                ClientComputedContentSHA256=self._declared_sha,
                S3ComputedContentSHA256=self._sha.hexdigest(),
            )
        for name, checksummer in self._checksums.items():
            value = self._trailers.get(name) or self._header_values.get(name, "")
            verify_trailer_checksum(name, value, checksummer)

    async def _rechunk(self, payload: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        pending = bytearray()
        async for piece in payload:
            pending += piece
            while len(pending) >= RECHUNK_BYTES:
                yield _chunk(bytes(pending[:RECHUNK_BYTES]))
                del pending[:RECHUNK_BYTES]
        if pending:
            yield _chunk(bytes(pending))
        name = self._trailer_checksum_name()
        yield f"0\r\n{name}:{self._trailers[name or '']}\r\n\r\n".encode()

    def _trailer_checksum_name(self) -> str | None:
        return next((n for n in self._trailer_names if _is_checksum_value(n)), None)

    def _trailer_value_len(self) -> int:
        name = self._trailer_checksum_name()
        return len(Checksummer.for_header(name).b64()) if name else 0


def _declared_checksums(headers: Mapping[str, str], mode: str | None) -> dict[str, Checksummer]:
    """Checksums the client declared, by header name: as headers, or (aws-chunked) trailers.
    Only value headers count, not x-amz-checksum-algorithm, -type or -mode."""
    names = [n for n in headers if _is_checksum_value(n)]
    if mode is not None:
        names += [n for n in _names(headers.get("x-amz-trailer", "")) if _is_checksum_value(n)]
    return {name: Checksummer.for_header(name) for name in names}


def _is_checksum_value(name: str) -> bool:
    return name.startswith(CHECKSUM_HEADER) and name[len(CHECKSUM_HEADER) :] in ALGORITHMS


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _rechunked_length(length: int, trailer: str, value_len: int) -> int:
    full, rest = divmod(length, RECHUNK_BYTES)
    framed = full * len(_chunk(b"\0" * RECHUNK_BYTES))
    if rest:
        framed += len(b"%x\r\n" % rest) + rest + 2
    return framed + len(f"0\r\n{trailer}:\r\n\r\n") + value_len


def _chunk_signing(verified: Verified | None) -> ChunkSigning | None:
    if verified is None:
        return None
    return ChunkSigning(
        verified.signing_key, verified.amz_date, verified.scope, verified.seed_signature
    )


async def _received(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected during upload")
        piece = message.get("body", b"")
        if piece:
            yield piece
        if not message.get("more_body", False):
            return


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip().lower() for n in text.split(",") if n.strip())


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _is_hex_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX
