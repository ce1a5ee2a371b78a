"""Decode S3 ``aws-chunked`` request bodies, sans-I/O: bytes in, decoded payload pieces out.

A SigV4 streaming upload (``Content-Encoding: aws-chunked``) frames the object in chunks, and its
``x-amz-content-sha256`` names the framing (S3 API reference, sigv4-streaming.html and
sigv4-streaming-trailers.html):

    STREAMING-UNSIGNED-PAYLOAD-TRAILER          hex CRLF data CRLF ... 0 CRLF trailers CRLF
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD          hex;chunk-signature=sig CRLF data CRLF ...
                                                0;chunk-signature=sig CRLF CRLF
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER  signed chunks as above, then trailers,
                                                x-amz-trailer-signature:sig CRLF CRLF

All three are HTTP chunked coding (RFC 9112 §7.1): a last chunk of size 0, then a trailer
section closed by an empty line, which is empty in the signed variant without trailers. So one
parser reads them all. A chunk signature chains from the previous one, the first from the seed
(the request's own signature), so chunks cannot be altered, dropped or reordered.

Memory is bounded: at most one chunk (64 MiB at most) and one line (4 KiB) are held. In the
signed modes a chunk is released only after its signature verified, so nothing unverified
reaches the caller; unsigned chunks are released as their bytes arrive.

    feed(...) -> list[bytes]         decoded payload available so far (possibly none)
    finish() -> dict[str, str]       the body ended well: its trailers, names lower-cased
    raise IncompleteBody             ended early, or x-amz-decoded-content-length was not met
    raise SignatureDoesNotMatch      a chunk or trailer signature is wrong or missing
    raise InvalidRequest             malformed framing, an oversized line or chunk, bad trailers

S3 says InvalidChunkSizeError or MalformedTrailerError for some of the InvalidRequest cases;
those codes are not in ``proxy.errors``, and both are 400 like InvalidRequest.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy.errors import IncompleteBody, InvalidRequest, S3Error, SignatureDoesNotMatch

UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
MODES = frozenset({UNSIGNED_TRAILER, SIGNED, SIGNED_TRAILER})

MAX_LINE_BYTES = 4096
MAX_CHUNK_BYTES = 64 * 1024 * 1024
MAX_TRAILERS = 16
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# RFC 9112 §7.1: chunk-size = 1*HEXDIG. [0-9A-Fa-f], not int(x, 16), which takes "0x", "_", "+".
_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2


@dataclass(frozen=True, slots=True)
class ChunkSigning:
    """What the signed variants need to check chunk signatures, taken from the request."""

    # The SigV4 derived key (kDate -> kRegion -> kService -> kSigning), kept out of reprs.
    signing_key: bytes = field(repr=False)
    amz_date: str  # x-amz-date, e.g. "20130524T000000Z"
    scope: str  # e.g. "20130524/us-east-1/s3/aws4_request"
    seed_signature: str  # the Signature= of the request's Authorization header

    def sign(self, kind: str, previous: str, *hashes: str) -> bytes:
        """The hex signature of one chunk (kind PAYLOAD) or of the trailers (kind TRAILER)."""
        text = "\n".join((f"AWS4-HMAC-SHA256-{kind}", self.amz_date, self.scope, previous, *hashes))
        return hmac.new(self.signing_key, text.encode(), hashlib.sha256).hexdigest().encode()


class _State(enum.Enum):
    SIZE = "chunk size line"
    DATA = "chunk data"
    DATA_END = "CRLF after chunk data"
    TRAILERS = "trailer section"
    DONE = "end of body"
    FAILED = "failed"


class Decoder:
    """Decode one aws-chunked body fed in pieces as they arrive; see the module docstring."""

    def __init__(
        self,
        mode: str,
        decoded_length: int | None,
        signing: ChunkSigning | None,
        trailer_names: tuple[str, ...] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"not an aws-chunked mode: {mode!r}")
        # Without signing values (the proxy verifies no signatures under --auth none), signed
        # bodies are still unframed, their signatures passed over rather than checked.
        self._mode = mode
        self._declared = decoded_length
        self._signing = signing if mode != UNSIGNED_TRAILER else None
        self._previous = signing.seed_signature if signing else ""
        self._trailer_names = tuple(name.lower() for name in trailer_names)
        self._buffer = bytearray()
        self._state = _State.SIZE
        self._remaining = 0  # bytes of the current chunk still to come
        self._signature = b""  # the current chunk's claimed signature
        self._chunk = bytearray()  # a signed chunk, held until verified
        self._decoded = 0
        self._trailers: dict[str, str] = {}
        self._trailers_signed = False
        self._blank_skipped = False

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the body; return the decoded payload they complete."""
        self._check_usable()
        self._buffer += data
        out: list[bytes] = []
        try:
            while self._step(out):
                pass
        except S3Error:
            self._state = _State.FAILED
            raise
        return out

    def finish(self) -> dict[str, str]:
        """Declare the end of input; return the trailers if the body was complete."""
        self._check_usable()
        if self._state is not _State.DONE:
            raise IncompleteBody(f"The aws-chunked body ended in its {self._state.value}.")
        return dict(self._trailers)

    def _check_usable(self) -> None:
        if self._state is _State.FAILED:
            raise InvalidRequest("The aws-chunked body was already rejected.")

    def _step(self, out: list[bytes]) -> bool:
        """Make one transition if the buffer allows; False when more input is needed."""
        match self._state:
            case _State.SIZE:
                return self._on_line(self._size_line)
            case _State.DATA:
                return self._data(out)
            case _State.DATA_END:
                return self._data_end(out)
            case _State.TRAILERS:
                return self._on_line(self._trailer_line)
            case _:
                if self._buffer:
                    raise InvalidRequest("Data follows the end of the aws-chunked body.")
                return False

    def _on_line(self, handle: Callable[[bytes], None]) -> bool:
        # A line longer than the limit is refused as soon as the limit is passed, so a peer
        # that never sends CRLF cannot make the decoder buffer without bound.
        end = self._buffer.find(b"\r\n", 0, MAX_LINE_BYTES + 2)
        if end < 0:
            if len(self._buffer) >= MAX_LINE_BYTES + 2:
                raise InvalidRequest(f"An aws-chunked line is longer than {MAX_LINE_BYTES} bytes.")
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        handle(line)
        return True

    def _size_line(self, line: bytes) -> None:
        # chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1); extensions other than
        # chunk-signature are ignored, as §7.1.1 requires of unrecognised ones.
        size_text, *extensions = line.split(b";")
        if not _HEX_SIZE.fullmatch(size_text.strip(b" \t")):
            raise InvalidRequest("An aws-chunked chunk size is not a hexadecimal number.")
        size = int(size_text, 16)
        if size > MAX_CHUNK_BYTES:
            raise InvalidRequest(f"An aws-chunked chunk is larger than {MAX_CHUNK_BYTES} bytes.")
        if self._declared is not None and self._decoded + size > self._declared:
            raise IncompleteBody("The body is longer than x-amz-decoded-content-length.")
        self._signature = _chunk_signature(extensions)
        self._remaining = size
        self._state = _State.DATA if size else _State.TRAILERS
        if not size:
            self._last_chunk()

    def _data(self, out: list[bytes]) -> bool:
        take = min(self._remaining, len(self._buffer))
        if not take:
            return False
        piece = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._remaining -= take
        self._decoded += take
        if self._signing is None:
            out.append(piece)
        else:
            self._chunk += piece
        if not self._remaining:
            self._state = _State.DATA_END
        return True

    def _data_end(self, out: list[bytes]) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer[:2] != b"\r\n":
            raise InvalidRequest("An aws-chunked chunk is not followed by CRLF.")
        del self._buffer[:2]
        if self._signing is not None:
            chunk = bytes(self._chunk)
            self._chunk.clear()
            self._verify_chunk(chunk)
            out.append(chunk)
        self._state = _State.SIZE
        return True

    def _verify_chunk(self, data: bytes) -> None:
        """Check the chunk signature (sigv4-streaming.html, "Defining the Chunk Body")."""
        assert self._signing is not None
        expected = self._signing.sign(
            "PAYLOAD", self._previous, _EMPTY_SHA256, hashlib.sha256(data).hexdigest()
        )
        if not hmac.compare_digest(expected, self._signature):
            raise SignatureDoesNotMatch()
        self._previous = expected.decode()

    def _last_chunk(self) -> None:
        if self._signing is not None:
            self._verify_chunk(b"")
        if self._declared is not None and self._decoded != self._declared:
            raise IncompleteBody(
                f"The body has {self._decoded} bytes, not the {self._declared} of "
                "x-amz-decoded-content-length."
            )

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._blank_line()
        elif self._trailers_signed:
            raise InvalidRequest("A trailer follows x-amz-trailer-signature.")
        else:
            name, value = _parse_trailer(line)
            if name == TRAILER_SIGNATURE:
                self._verify_trailers(value)
            else:
                self._add_trailer(name, value)

    def _blank_line(self) -> None:
        # AWS's own trailer example puts an empty line between the last chunk and the
        # trailers: one such line is skipped while trailers are still owed.
        owed = self._mode == SIGNED_TRAILER or bool(self._trailer_names)
        started = bool(self._trailers) or self._trailers_signed
        if owed and not started and not self._blank_skipped:
            self._blank_skipped = True
            return
        if self._mode == SIGNED_TRAILER and not self._trailers_signed:
            raise SignatureDoesNotMatch("The trailers carry no x-amz-trailer-signature.")
        missing = [name for name in self._trailer_names if name not in self._trailers]
        if missing:
            raise InvalidRequest(f"The trailer {missing[0]} named by x-amz-trailer is missing.")
        self._state = _State.DONE

    def _add_trailer(self, name: str, value: str) -> None:
        if self._mode == SIGNED:
            raise InvalidRequest(f"{SIGNED} bodies carry no trailers.")
        if name in self._trailers or len(self._trailers) >= MAX_TRAILERS:
            raise InvalidRequest(f"The trailer {name} is repeated or one too many.")
        self._trailers[name] = value

    def _verify_trailers(self, signature: str) -> None:
        """Check x-amz-trailer-signature over "name:value\\n" lines (sigv4-streaming-trailers)."""
        if self._mode != SIGNED_TRAILER:
            raise InvalidRequest(f"Only {SIGNED_TRAILER} bodies carry a trailer signature.")
        if self._signing is None:
            self._trailers_signed = True
            return
        canonical = "".join(f"{name}:{value}\n" for name, value in self._trailers.items())
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        expected = self._signing.sign("TRAILER", self._previous, digest)
        if not hmac.compare_digest(expected, signature.encode()):
            raise SignatureDoesNotMatch()
        self._trailers_signed = True


def _chunk_signature(extensions: list[bytes]) -> bytes:
    for extension in extensions:
        name, _, value = extension.partition(b"=")
        if name.strip(b" \t") == b"chunk-signature":
            return value.strip(b" \t")
    return b""


def _parse_trailer(line: bytes) -> tuple[str, str]:
    """One ``name:value`` trailer field (RFC 9112 §7.1.2), name lower-cased, value trimmed."""
    try:
        name, colon, value = line.decode("ascii").partition(":")
    except UnicodeDecodeError:
        colon = ""
    if not colon or not _TOKEN.fullmatch(name):
        raise InvalidRequest("An aws-chunked trailer is not a name:value line.")
    return name.lower(), value.strip(" \t")
