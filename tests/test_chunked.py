"""Specification of proxy.chunked: decoding aws-chunked upload bodies, signed and unsigned.

The vectors are AWS's own (S3 API reference, sigv4-streaming.html and
sigv4-streaming-trailers.html); the rest is built by a small encoder written here from the
same pages, so the decoder is checked against an independent reading of the spec.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.checksums import Checksummer, verify_trailer_checksum
from proxy.chunked import (
    MAX_CHUNK_BYTES,
    MAX_LINE_BYTES,
    SIGNED,
    SIGNED_TRAILER,
    UNSIGNED_TRAILER,
    ChunkSigning,
    Decoder,
)
from proxy.errors import BadDigest, IncompleteBody, InvalidRequest, SignatureDoesNotMatch

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def derive_key(secret: str, scope: str) -> bytes:
    """kSigning: HMAC-chain "AWS4"+secret through date, region, service and aws4_request."""
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signing(seed: str) -> ChunkSigning:
    return ChunkSigning(derive_key(SECRET, SCOPE), AMZ_DATE, SCOPE, seed)


# sigv4-streaming.html, "Example: PUT Object": 66,560 bytes of 'a' in chunks of 64 KiB and 1 KiB.
AWS_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)
AWS_PAYLOAD = b"a" * 66560
AWS_BODY = (
    f"10000;chunk-signature={AWS_SIGNATURES[0]}\r\n".encode()
    + b"a" * 65536
    + f"\r\n400;chunk-signature={AWS_SIGNATURES[1]}\r\n".encode()
    + b"a" * 1024
    + f"\r\n0;chunk-signature={AWS_SIGNATURES[2]}\r\n\r\n".encode()
)

# sigv4-streaming-trailers.html: the same payload with a CRC-32C trailer, another seed.
AWS_TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
AWS_TRAILER_SIGNATURES = (
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
)
AWS_TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def aws_trailer_body(blank_line_before_trailers: bool) -> bytes:
    blank = b"\r\n" if blank_line_before_trailers else b""
    return (
        f"10000;chunk-signature={AWS_TRAILER_SIGNATURES[0]}\r\n".encode()
        + b"a" * 65536
        + f"\r\n400;chunk-signature={AWS_TRAILER_SIGNATURES[1]}\r\n".encode()
        + b"a" * 1024
        + f"\r\n0;chunk-signature={AWS_TRAILER_SIGNATURES[2]}\r\n".encode()
        + blank
        + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        + f"x-amz-trailer-signature:{AWS_TRAILER_SIGNATURE}\r\n\r\n".encode()
    )


# CRC-32 of "123456789" is the catalogue check value 0xCBF43926, base64 y/Q5Jg==.
UNSIGNED_BODY = b"4\r\n1234\r\n5\r\n56789\r\n0\r\nx-amz-checksum-crc32:y/Q5Jg==\r\n\r\n"
CRC32_TRAILER = ("x-amz-checksum-crc32",)


def pieces(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """Cut data at the given sizes, cycling through them, the last piece possibly shorter."""
    start, index = 0, 0
    while start < len(data):
        size = max(1, sizes[index % len(sizes)])
        yield data[start : start + size]
        start, index = start + size, index + 1


def encode(
    payload: bytes,
    chunk_sizes: Sequence[int],
    mode: str,
    seed: str = AWS_SEED,
    trailers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The aws-chunked body a client sends, built straight from AWS's grammar."""
    key, previous, wire = derive_key(SECRET, SCOPE), seed, bytearray()
    for chunk in [*pieces(payload, chunk_sizes), b""]:
        if mode == UNSIGNED_TRAILER:
            wire += f"{len(chunk):x}\r\n".encode()
        else:
            chunk_hash = hashlib.sha256(chunk).hexdigest()
            parts = ["AWS4-HMAC-SHA256-PAYLOAD", AMZ_DATE, SCOPE, previous, EMPTY_SHA256]
            text = "\n".join([*parts, chunk_hash])
            previous = hmac_hex(key, text)
            wire += f"{len(chunk):x};chunk-signature={previous}\r\n".encode()
        wire += chunk + b"\r\n" if chunk else b""
    canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
    wire += canonical.replace("\n", "\r\n").encode()
    if mode == SIGNED_TRAILER:
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        text = "\n".join(["AWS4-HMAC-SHA256-TRAILER", AMZ_DATE, SCOPE, previous, digest])
        wire += f"x-amz-trailer-signature:{hmac_hex(key, text)}\r\n".encode()
    return bytes(wire + b"\r\n")


def decode(decoder: Decoder, body: bytes, split: int | Sequence[int] | None = None) -> bytes:
    """Feed body whole or cut in pieces, finish, and return the decoded payload."""
    sizes = [split] if isinstance(split, int) else split or [len(body) or 1]
    out = b"".join(b"".join(decoder.feed(piece)) for piece in pieces(body, sizes))
    decoder.finish()
    return out


def aws_decoder(decoded_length: int | None = 66560) -> Decoder:
    return Decoder(SIGNED, decoded_length, signing(AWS_SEED))


# --- AWS's published examples ------------------------------------------------------------------


def test_aws_example_body_is_the_published_content_length() -> None:
    assert len(AWS_BODY) == 66824


def test_aws_example_decodes_to_66560_bytes_of_a_in_its_two_chunks() -> None:
    decoder = aws_decoder()
    assert decoder.feed(AWS_BODY) == [b"a" * 65536, b"a" * 1024]
    assert decoder.finish() == {}


@pytest.mark.parametrize("split", [1, 7, 8192])
def test_aws_example_decodes_the_same_whatever_the_feed_split(split: int) -> None:
    assert decode(aws_decoder(), AWS_BODY, split) == AWS_PAYLOAD


@pytest.mark.parametrize("index", range(3))
def test_every_aws_example_chunk_signature_is_verified(index: int) -> None:
    good = AWS_SIGNATURES[index]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(SignatureDoesNotMatch):
        aws_decoder().feed(AWS_BODY.replace(good.encode(), bad.encode()))


@pytest.mark.parametrize("blank_line", [False, True], ids=["as SDKs send it", "as AWS prints it"])
def test_aws_trailer_example_decodes_and_its_trailer_signature_verifies(blank_line: bool) -> None:
    decoder = Decoder(SIGNED_TRAILER, 66560, signing(AWS_TRAILER_SEED), ("x-amz-checksum-crc32c",))
    digest = Checksummer("crc32c")
    for piece in decoder.feed(aws_trailer_body(blank_line)):
        digest.update(piece)
    trailers = decoder.finish()
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    verify_trailer_checksum("x-amz-checksum-crc32c", trailers["x-amz-checksum-crc32c"], digest)


def test_aws_trailer_example_with_another_checksum_fails_its_trailer_signature() -> None:
    body = aws_trailer_body(False).replace(b"sOO8/Q==", b"AAAAAA==")
    decoder = Decoder(SIGNED_TRAILER, 66560, signing(AWS_TRAILER_SEED), ("x-amz-checksum-crc32c",))
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(body)


# --- the unsigned trailer variant --------------------------------------------------------------


def test_unsigned_trailer_body_decodes_and_returns_its_crc32_trailer() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, 9, None, CRC32_TRAILER)
    digest = Checksummer.for_header("x-amz-checksum-crc32")
    for piece in decoder.feed(UNSIGNED_BODY):
        digest.update(piece)
    trailers = decoder.finish()
    assert trailers == {"x-amz-checksum-crc32": "y/Q5Jg=="}
    verify_trailer_checksum("x-amz-checksum-crc32", trailers["x-amz-checksum-crc32"], digest)


def test_a_wrong_trailer_checksum_is_a_bad_digest() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, 9, None, CRC32_TRAILER)
    digest = Checksummer("crc32")
    for piece in decoder.feed(UNSIGNED_BODY.replace(b"56789", b"56788")):
        digest.update(piece)
    trailers = decoder.finish()
    with pytest.raises(BadDigest):
        verify_trailer_checksum("x-amz-checksum-crc32", trailers["x-amz-checksum-crc32"], digest)


def test_unsigned_data_is_released_as_it_arrives() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, None, None)
    assert decoder.feed(b"a\r\n01234") == [b"01234"]
    assert decoder.feed(b"56789\r\n0\r\n\r\n") == [b"56789"]
    assert decoder.finish() == {}


def test_trailer_names_are_lower_cased_and_values_trimmed() -> None:
    body = b"1\r\nx\r\n0\r\nX-Amz-Checksum-CRC32: jNwWgw== \r\n\r\n"
    decoder = Decoder(UNSIGNED_TRAILER, 1, None, ("X-Amz-Checksum-Crc32",))
    assert decode(decoder, body) == b"x"
    assert decoder.finish() == {"x-amz-checksum-crc32": "jNwWgw=="}


def test_an_empty_payload_is_one_last_chunk() -> None:
    assert decode(Decoder(UNSIGNED_TRAILER, 0, None), b"0\r\n\r\n") == b""


def test_upper_case_hex_sizes_and_unknown_extensions_are_accepted() -> None:
    body = b"A;foo=bar\r\n0123456789\r\n0;x\r\n\r\n"
    assert decode(Decoder(UNSIGNED_TRAILER, 10, None), body) == b"0123456789"


# --- truncation --------------------------------------------------------------------------------

TRUNCATABLE = [
    pytest.param(UNSIGNED_TRAILER, None, CRC32_TRAILER, UNSIGNED_BODY, id="unsigned trailer"),
    pytest.param(SIGNED, AWS_SEED, (), encode(b"abcdefgh", [3], SIGNED), id="signed"),
    pytest.param(
        SIGNED_TRAILER,
        AWS_SEED,
        CRC32_TRAILER,
        encode(b"abcdefgh", [5], SIGNED_TRAILER, trailers=[("x-amz-checksum-crc32", "ru8qUA==")]),
        id="signed trailer",
    ),
]


@pytest.mark.parametrize(("mode", "seed", "names", "body"), TRUNCATABLE)
def test_a_body_cut_anywhere_is_incomplete_at_finish(
    mode: str, seed: str | None, names: tuple[str, ...], body: bytes
) -> None:
    for cut in range(len(body)):
        decoder = Decoder(mode, None, signing(seed) if seed else None, names)
        decoder.feed(body[:cut])
        with pytest.raises(IncompleteBody):
            decoder.finish()


@pytest.mark.parametrize(
    "cut",
    [0, 5, 87, 88, 1000, 65624, 65625, 65626, 65700, 66738, 66800, 66822, 66823],
    ids=lambda cut: f"after {cut} bytes",
)
def test_the_aws_example_cut_at_a_boundary_is_incomplete_at_finish(cut: int) -> None:
    decoder = aws_decoder()
    decoder.feed(AWS_BODY[:cut])
    with pytest.raises(IncompleteBody):
        decoder.finish()


# --- signatures --------------------------------------------------------------------------------


def test_one_flipped_bit_in_the_data_fails_the_chunk_signature() -> None:
    body = bytearray(AWS_BODY)
    body[66000] ^= 0x01  # inside the second chunk's data
    decoder = aws_decoder()
    assert decoder.feed(bytes(body[:65700])) == [b"a" * 65536]
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(bytes(body[65700:]))


def test_a_signed_chunk_is_not_released_before_it_verifies() -> None:
    body = bytearray(AWS_BODY)
    body[100] ^= 0x01
    decoder = aws_decoder()
    released = [decoder.feed(bytes(body[i : i + 4096])) for i in range(0, 65536, 4096)]
    assert released == [[]] * 16
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(bytes(body[65536:]))


def test_a_signed_chunk_without_a_signature_does_not_match() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        aws_decoder().feed(b"3\r\nabc\r\n")


def test_a_chunk_signed_with_another_seed_does_not_match() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        Decoder(SIGNED, 66560, signing(AWS_TRAILER_SEED)).feed(AWS_BODY)


def test_a_missing_trailer_signature_does_not_match() -> None:
    body = encode(b"abc", [3], SIGNED, trailers=[("x-amz-checksum-crc32", "NSRBwg==")])
    decoder = Decoder(SIGNED_TRAILER, 3, signing(AWS_SEED), CRC32_TRAILER)
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(body)


def test_a_trailer_signature_on_an_unsigned_body_is_refused() -> None:
    body = encode(b"abc", [3], UNSIGNED_TRAILER, trailers=[("x-amz-trailer-signature", "0" * 64)])
    with pytest.raises(InvalidRequest):
        Decoder(UNSIGNED_TRAILER, 3, None).feed(body)


# --- lengths and limits ------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [66559, 66561, 0, 1 << 40])
def test_a_decoded_length_other_than_declared_is_incomplete(declared: int) -> None:
    decoder = aws_decoder(declared)
    with pytest.raises(IncompleteBody):
        decoder.feed(AWS_BODY)


def test_a_body_longer_than_declared_is_refused_before_its_data_arrives() -> None:
    with pytest.raises(IncompleteBody):
        Decoder(UNSIGNED_TRAILER, 10, None).feed(b"b\r\n")


def test_an_endless_size_line_is_refused_once_past_the_limit() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, None, None)
    for _ in range(MAX_LINE_BYTES + 1):
        assert decoder.feed(b"1") == []
    with pytest.raises(InvalidRequest):
        decoder.feed(b"1")


def test_an_endless_trailer_line_is_refused_without_buffering_it() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, None, None)
    with pytest.raises(InvalidRequest):
        decoder.feed(b"0\r\nx-amz-meta-a:" + b"v" * 10 * MAX_LINE_BYTES)


def test_a_chunk_over_64_mib_is_refused_from_its_size_line() -> None:
    with pytest.raises(InvalidRequest):
        Decoder(UNSIGNED_TRAILER, None, None).feed(f"{MAX_CHUNK_BYTES + 1:x}\r\n".encode())


def test_too_many_trailers_are_refused() -> None:
    fields = b"".join(b"x-amz-meta-%d:v\r\n" % i for i in range(17))
    with pytest.raises(InvalidRequest):
        Decoder(UNSIGNED_TRAILER, None, None).feed(b"0\r\n" + fields)


# --- malformed framing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",
        b"0x10\r\n",
        b"+1\r\n",
        b"-1\r\n",
        b"1_0\r\n",
        b"\r\n",
        b";chunk-signature=00\r\n",
        b"\xff\r\n",
        b"1" * 17 + b"\r\n",
    ],
    ids=repr,
)
def test_a_garbage_size_line_is_an_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        Decoder(UNSIGNED_TRAILER, None, None).feed(body)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"3\r\nabcX\r\n", InvalidRequest),
        (b"0\r\n\r\nmore", InvalidRequest),
        (b"0\r\nno colon here\r\n", InvalidRequest),
        (b"0\r\n:empty-name\r\n", InvalidRequest),
        (b"0\r\nx-amz-meta-a:\xff\r\n", InvalidRequest),
        (b"0\r\nx-amz-meta-a:1\r\nx-amz-meta-a:2\r\n", InvalidRequest),
    ],
    ids=[
        "data not followed by CRLF",
        "bytes after the end",
        "a trailer without a colon",
        "a trailer without a name",
        "a trailer that is not ASCII",
        "a repeated trailer",
    ],
)
def test_malformed_framing_is_an_invalid_request(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        Decoder(UNSIGNED_TRAILER, None, None).feed(body)


def test_a_trailer_on_a_signed_body_without_trailers_is_refused() -> None:
    body = encode(b"abc", [3], SIGNED)[:-2] + b"x-amz-checksum-crc32:NSRBwg==\r\n\r\n"
    with pytest.raises(InvalidRequest):
        Decoder(SIGNED, 3, signing(AWS_SEED)).feed(body)


def test_a_trailer_named_by_x_amz_trailer_but_not_sent_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        Decoder(UNSIGNED_TRAILER, 1, None, CRC32_TRAILER).feed(b"1\r\nx\r\n0\r\n\r\n\r\n")


def test_a_decoder_that_failed_refuses_further_input() -> None:
    decoder = Decoder(UNSIGNED_TRAILER, None, None)
    with pytest.raises(InvalidRequest):
        decoder.feed(b"zz\r\n")
    with pytest.raises(InvalidRequest):
        decoder.feed(b"0\r\n\r\n")
    with pytest.raises(InvalidRequest):
        decoder.finish()


def test_an_unknown_mode_is_a_caller_bug() -> None:
    with pytest.raises(ValueError):
        Decoder("STREAMING-UNSIGNED-PAYLOAD", None, None)


def test_without_signing_values_a_signed_body_is_unframed_but_not_verified() -> None:
    # --auth none: the proxy holds no secret, yet must never pass chunk framing upstream.
    tampered = AWS_BODY.replace(AWS_SIGNATURES[0].encode(), b"0" * 64)
    decoder = Decoder(SIGNED, len(AWS_PAYLOAD), None)
    assert b"".join(decoder.feed(tampered)) == AWS_PAYLOAD
    assert decoder.finish() == {}


def test_the_signing_key_stays_out_of_reprs() -> None:
    assert "signing_key" not in repr(signing(AWS_SEED))


# --- round trips -------------------------------------------------------------------------------

sizes = st.lists(st.integers(1, 300), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=2000),
    chunk_sizes=sizes,
    splits=sizes,
    mode=st.sampled_from([UNSIGNED_TRAILER, SIGNED, SIGNED_TRAILER]),
)
def test_any_encoded_payload_decodes_back_whatever_the_chunks_and_splits(
    payload: bytes, chunk_sizes: list[int], splits: list[int], mode: str
) -> None:
    digest = Checksummer("crc32")
    digest.update(payload)
    has_trailer = mode != SIGNED
    trailers = [("x-amz-checksum-crc32", digest.b64())] if has_trailer else []
    body = encode(payload, chunk_sizes, mode, trailers=trailers)
    names = CRC32_TRAILER if has_trailer else ()
    decoder = Decoder(mode, len(payload), signing(AWS_SEED), names)
    assert decode(decoder, body, splits) == payload
    assert decoder.finish() == dict(trailers)
