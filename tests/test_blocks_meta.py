"""Block arithmetic, object metadata and freshness: pure tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiering.blocks import block_bounds, block_count, block_span, expected_length, slice_block
from tiering.freshness import Freshness as F
from tiering.freshness import is_fresh
from tiering.meta import (
    ObjectMeta,
    content_range_total,
    md5_matches,
    meta_from_bytes,
    meta_to_bytes,
)

B = 100


@pytest.mark.parametrize(
    ("start", "end", "indices"),
    [(0, 0, [0]), (0, 99, [0]), (0, 100, [0, 1]), (99, 100, [0, 1]), (250, 499, [2, 3, 4])],
)
def test_block_span_covers_exactly_the_touched_blocks(
    start: int, end: int, indices: list[int]
) -> None:
    assert list(block_span(start, end, B)) == indices


@pytest.mark.parametrize(
    ("index", "size", "bounds"), [(0, 250, (0, 99)), (2, 250, (200, 249)), (0, 1, (0, 0))]
)
def test_block_bounds_clamp_to_the_object(index: int, size: int, bounds: tuple[int, int]) -> None:
    assert block_bounds(index, B, size) == bounds
    assert expected_length(index, B, size) == bounds[1] - bounds[0] + 1


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 500))
def test_slices_of_spanned_blocks_reassemble_the_range(a: int, b: int, block: int) -> None:
    start, end = min(a, b), max(a, b)
    data = bytes(i % 251 for i in range(end + 1))
    pieces = []
    for index in block_span(start, end, block):
        lo, hi = block_bounds(index, block, len(data))
        pieces.append(bytes(slice_block(data[lo : hi + 1], index, block, start, end)))
    assert b"".join(pieces) == data[start : end + 1]
    assert block_count(len(data), block) == -(-len(data) // block)


HEADERS = (
    (b"ETag", b'"abc"'),
    (b"Last-Modified", b"Wed, 21 Oct 2015 07:28:00 GMT"),
    (b"Content-Type", b"text/plain"),
    (b"Content-Length", b"10"),
    (b"Content-Range", b"bytes 0-9/1000"),
    (b"x-amz-meta-owner", b"me"),
    (b"x-amz-checksum-crc32", b"AAAA"),
    (b"x-amz-request-id", b"R"),
    (b"Date", b"now"),
)


def test_meta_keeps_object_headers_and_drops_per_response_ones() -> None:
    meta = ObjectMeta.from_upstream(HEADERS, 1000, now=5.0, whole=True)
    assert meta.etag == '"abc"'
    assert meta.last_modified == 1445412480
    assert dict(meta.headers) == {
        b"etag": b'"abc"',
        b"last-modified": b"Wed, 21 Oct 2015 07:28:00 GMT",
        b"content-type": b"text/plain",
        b"x-amz-meta-owner": b"me",
    }
    assert meta.checksums == ((b"x-amz-checksum-crc32", b"AAAA"),)


def test_multipart_checksums_without_their_type_are_not_replayed() -> None:
    headers = ((b"ETag", b'"abc-3"'), (b"x-amz-checksum-crc32", b"AAAA"))
    assert ObjectMeta.from_upstream(headers, 10, now=0.0, whole=True).checksums == ()
    typed = (*headers, (b"x-amz-checksum-type", b"FULL_OBJECT"))
    assert ObjectMeta.from_upstream(typed, 10, now=0.0, whole=True).checksums == (
        (b"x-amz-checksum-crc32", b"AAAA"),
        (b"x-amz-checksum-type", b"FULL_OBJECT"),
    )


def test_meta_from_a_ranged_answer_has_unknown_checksums() -> None:
    assert ObjectMeta.from_upstream(HEADERS, 1000, now=5.0, whole=False).checksums is None


def test_meta_round_trips_through_its_disk_form() -> None:
    meta = ObjectMeta.from_upstream(HEADERS, 1000, now=5.0, whole=True)
    assert meta_from_bytes(meta_to_bytes(meta)) == meta
    assert meta_from_bytes(b"garbage") is None


@pytest.mark.parametrize(
    ("value", "total"),
    [("bytes 0-9/1000", 1000), ("bytes */1000", 1000), ("bytes 0-9/*", None), ("", None)],
)
def test_content_range_total(value: str, total: int | None) -> None:
    assert content_range_total(value) == total


@pytest.mark.parametrize(
    ("freshness", "age", "fresh"),
    [
        (F("immutable"), 1e9, True),
        (F("strict"), 0.0, False),
        (F("ttl", 5.0), 4.99, True),
        (F("ttl", 5.0), 5.0, False),
        (F("ttl", 0.0), 0.0, False),
    ],
)
def test_freshness_decisions(freshness: F, age: float, fresh: bool) -> None:
    assert is_fresh(freshness, validated_at=100.0, now=100.0 + age) is fresh


@pytest.mark.parametrize(
    ("etag", "extra", "body", "ok"),
    [
        ('"5d41402abc4b2a76b9719d911017c592"', (), b"hello", True),
        ('"5d41402abc4b2a76b9719d911017c592"', (), b"hellO", False),
        ('"5d41402abc4b2a76b9719d911017c592-2"', (), b"hellO", True),
        ('"5d41402abc4b2a76b9719d911017c592"',
         ((b"x-amz-server-side-encryption", b"aws:kms"),), b"hellO", True),
        ('"5d41402abc4b2a76b9719d911017c592"',
         ((b"x-amz-server-side-encryption", b"AES256"),), b"hellO", False),
    ],
)  # fmt: skip
def test_a_body_is_checked_against_an_md5_etag_only_where_s3_makes_one(
    etag: str, extra: tuple[tuple[bytes, bytes], ...], body: bytes, ok: bool
) -> None:
    meta = ObjectMeta.from_upstream(((b"ETag", etag.encode()), *extra), len(body), 0.0, False)
    assert md5_matches(meta, body) is ok
