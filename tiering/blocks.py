"""The cache unit: a fixed-size block of one object version, and the arithmetic around it.

A block is keyed by (bucket, key, ETag, index). Because the ETag is part of the key, a new
version of an object makes every block of the old one unreachable: invalidation is free and two
versions can never be mixed in one response.
"""

from __future__ import annotations

from typing import NamedTuple


# NamedTuples rather than frozen dataclasses: these are built, hashed and compared on every
# request, and tuples do all three in C (py-spy showed the dataclass versions' __init__, __hash__
# and __eq__ among the hot path's largest Python costs).
class ObjectId(NamedTuple):
    """An object as clients name it, independent of its version."""

    bucket: str
    key: str


class BlockKey(NamedTuple):
    """One block of one object version."""

    bucket: str
    key: str
    etag: str
    block: int  # its number within the object


def block_span(start: int, end: int, block_size: int) -> range:
    """Indices of the blocks that hold bytes start..end (inclusive)."""
    return range(start // block_size, end // block_size + 1)


def block_bounds(index: int, block_size: int, size: int) -> tuple[int, int]:
    """First and last (inclusive) byte of block `index` of an object of `size` bytes."""
    first = index * block_size
    return first, min(first + block_size, size) - 1


def block_count(size: int, block_size: int) -> int:
    return -(-size // block_size)


def expected_length(index: int, block_size: int, size: int) -> int:
    first, last = block_bounds(index, block_size, size)
    return last - first + 1


def slice_block(
    data: bytes, index: int, block_size: int, start: int, end: int
) -> memoryview | bytes:
    """The part of block `index` that falls within start..end (inclusive), without copying."""
    base = index * block_size
    lo = max(start - base, 0)
    hi = min(end - base + 1, len(data))
    if lo == 0 and hi == len(data):
        return data
    return memoryview(data)[lo:hi]
