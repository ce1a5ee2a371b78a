"""Parts of blocks: what a read needs of each block, and the doorkeeper that decides when a
partial read costs only its own bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiering.parts import Piece, Span, Touches, first_part, part_needed

B = 100
SIZE = 1050  # ten whole blocks and a last one of 50 bytes


@pytest.mark.parametrize(
    ("index", "start", "end", "part"),
    [(0, 0, 99, None), (0, 0, 5000, None), (3, 0, SIZE - 1, None), (10, 1000, SIZE - 1, None),
     (0, 10, 99, Span(10, 99)), (0, 0, 10, Span(0, 10)), (2, 150, 250, Span(200, 250)),
     (1, 150, 250, Span(150, 199)), (10, 1010, SIZE - 1, Span(1010, 1049)),
     (10, 900, 1020, Span(1000, 1020))],
)  # fmt: skip
def test_a_read_needs_part_of_a_block_only_at_its_edges(
    index: int, start: int, end: int, part: Span | None
) -> None:
    assert part_needed(index, B, SIZE, start, end) == part


@pytest.mark.parametrize(
    ("start", "end", "part"),
    [(0, None, None), (0, 99, None), (0, 5000, None), (100, None, None),
     (0, 0, Span(0, 0)), (10, None, Span(10, 99)), (10, 20, Span(10, 20)),
     (150, 1000, Span(150, 199)), (199, 199, Span(199, 199))],
)  # fmt: skip
def test_a_cold_range_names_what_it_needs_of_its_first_block_before_the_size_is_known(
    start: int, end: int | None, part: Span | None
) -> None:
    assert first_part(start, end, B) == part


def test_a_piece_slices_by_object_offsets_and_says_what_it_covers() -> None:
    piece = Piece(250, bytes(range(50)))
    assert bytes(piece.slice(260, 269)) == bytes(range(10, 20))
    assert bytes(piece.slice(0, 10_000)) == bytes(range(50))
    assert piece.covers(Span(250, 299)) and piece.covers(Span(260, 260))
    assert not piece.covers(Span(249, 260)) and not piece.covers(Span(290, 300))


# A partial read is fresh (fetch only its bytes, cache nothing) unless it reads bytes again.
TOUCHES = {
    "a first partial read is fresh": ([("a", 0, 9)], [True]),
    "the same bytes read again are not": ([("a", 0, 9), ("a", 0, 9)], [True, False]),
    "overlapping bytes are not": ([("a", 0, 9), ("a", 9, 20)], [True, False]),
    "disjoint bytes of one block are": ([("a", 0, 9), ("a", 10, 19), ("a", 50, 60)],
                                        [True, True, True]),
    "blocks are apart": ([("a", 0, 9), ("b", 0, 9)], [True, True]),
    "a block read in many pieces counts as read again": (
        [("a", i * 10, i * 10 + 9) for i in range(9)], [True] * 8 + [False]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TOUCHES))
def test_the_doorkeeper_admits_a_block_when_its_bytes_are_read_again(case: str) -> None:
    reads, fresh = TOUCHES[case]
    touches = Touches(spans_per_block=8)
    assert [touches.fresh(key, Span(s, e)) for key, s, e in reads] == fresh


def test_the_doorkeeper_forgets_the_least_recent_block_beyond_its_capacity() -> None:
    touches = Touches(capacity=2)
    for key in ("a", "b", "c"):
        touches.fresh(key, Span(0, 9))
    assert touches.fresh("a", Span(0, 9))  # forgotten: fresh again
    assert not touches.fresh("c", Span(0, 9))


@given(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1))
def test_the_parts_a_read_needs_add_up_to_the_read(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    total = 0
    for index in range(start // B, end // B + 1):
        part = part_needed(index, B, SIZE, start, end)
        total += part.length if part is not None else min(B, SIZE - index * B)
    assert total == end - start + 1
