"""Read-ahead decisions: sequential readers get a growing window, random ones get none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiering.parts import Span
from tiering.readahead import Budget, ReadAhead, ReadAheadConfig, footer_blocks

B = 100
SIZE = 100 * B  # 100 blocks


def reads(ahead: ReadAhead, spans: list[tuple[int, int]]) -> list[list[int]]:
    return [list(ahead.on_read("o", s, e, SIZE, B)) for s, e in spans]


def test_a_first_read_prefetches_nothing() -> None:
    assert reads(ReadAhead(), [(0, 99)]) == [[]]


def test_consecutive_ranges_grow_the_window_until_its_limit() -> None:
    ahead = ReadAhead(ReadAheadConfig(min_window=2, max_window=8))
    got = reads(ahead, [(i * B, i * B + B - 1) for i in range(6)])
    assert got == [[], [2, 3], [3, 4, 5, 6], [4, 5, 6, 7, 8, 9, 10, 11], list(range(5, 13)),
                   list(range(6, 14))]  # fmt: skip


def test_a_random_jump_collapses_the_window() -> None:
    ahead = ReadAhead()
    reads(ahead, [(0, 99), (100, 199), (200, 299)])
    assert ahead.window("o") > 0
    assert reads(ahead, [(7000, 7099)]) == [[]]
    assert ahead.window("o") == 0


@pytest.mark.parametrize(("gap", "sequential"), [(0, True), (1, False), (99, False), (5000, False)])
def test_a_read_that_skips_any_bytes_is_not_sequential(gap: int, sequential: bool) -> None:
    # A reader that skips data between reads (one Parquet column of several) would have the
    # bytes it skips read ahead: only a read at the very next byte continues the pattern.
    ahead = ReadAhead()
    reads(ahead, [(0, 99)])
    assert (reads(ahead, [(100 + gap, 150 + gap)]) != [[]]) is sequential


def test_the_window_never_passes_the_end_of_the_object() -> None:
    ahead = ReadAhead(ReadAheadConfig(min_window=4, max_window=64))
    got = reads(ahead, [(9500, 9599), (9600, 9699)])
    assert got == [[], [97, 98, 99]]


def test_a_read_behind_the_previous_end_is_not_sequential() -> None:
    ahead = ReadAhead()
    reads(ahead, [(0, 149)])
    assert reads(ahead, [(120, 199)]) == [[]]


def test_objects_are_tracked_separately() -> None:
    ahead = ReadAhead()
    ahead.on_read("a", 0, 99, SIZE, B)
    assert list(ahead.on_read("b", 100, 199, SIZE, B)) == []


# Each read: (start, end, response start, response end), as tiering/streaming.py notes a long
# response block by block; the expected blocks prefetched after each.
RESPONSES = {
    "a whole-object GET reads ahead to the object's end": (
        [(0, 99, 0, SIZE - 1), (100, 199, 0, SIZE - 1), (200, 299, 0, SIZE - 1)],
        [[], [2, 3], [3, 4, 5, 6]],
    ),
    "a range reads ahead only the blocks it needs whole": (
        [(0, 99, 0, 349), (100, 199, 0, 349), (200, 299, 0, 349), (300, 349, 0, 349)],
        [[], [2], [], []],
    ),
    "a range ending on a block boundary reads ahead to that boundary": (
        [(0, 99, 0, 399), (100, 199, 0, 399), (200, 299, 0, 399)],
        [[], [2, 3], [3]],
    ),
    "a range that began where the previous one ended reads ahead past its end": (
        [(0, 99, 0, 99), (100, 199, 100, 399), (200, 299, 100, 399)],
        [[], [2, 3], [3, 4, 5, 6]],
    ),
    "column chunks with others between them are read ahead inside each only": (
        [(150, 199, 150, 420), (200, 299, 150, 420), (300, 399, 150, 420), (400, 420, 150, 420),
         (750, 799, 750, 1020), (800, 899, 750, 1020), (900, 999, 750, 1020)],
        [[], [3], [], [], [], [9], []],
    ),
    "a range that skipped bytes after the previous one stays inside itself": (
        [(0, 99, 0, 99), (150, 199, 150, 420), (200, 299, 150, 420)],
        [[], [], [3]],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RESPONSES))
def test_read_ahead_stays_inside_a_response_unless_the_reader_walks_past_it(case: str) -> None:
    spans, expected = RESPONSES[case]
    ahead = ReadAhead(ReadAheadConfig(min_window=2, max_window=4))
    got = [list(ahead.on_read("o", s, e, SIZE, B, Span(rs, re))) for s, e, rs, re in spans]
    assert got == expected


@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1)), max_size=30))
def test_prefetch_is_always_beyond_the_read_and_inside_the_object(
    spans: list[tuple[int, int]],
) -> None:
    ahead = ReadAhead()
    for a, b in spans:
        start, end = min(a, b), max(a, b)
        for block in ahead.on_read("o", start, end, SIZE, B):
            assert end // B < block < SIZE // B
        assert ahead.window("o") <= ReadAheadConfig().max_window


@pytest.mark.parametrize(
    ("key", "size", "block_size", "blocks"),
    [("t/x.parquet", 10 << 20, 1 << 20, [9]), ("t/x.parquet", (10 << 20) + 5, 1 << 20, [10]),
     ("t/x.parquet", 100, 1 << 20, []), ("t/x.csv", 10 << 20, 1 << 20, []),
     ("x.parquet", 1 << 20, 16 << 10, [63])],
)  # fmt: skip
def test_columnar_files_get_only_the_block_holding_their_footer(
    key: str, size: int, block_size: int, blocks: list[int]
) -> None:
    assert list(footer_blocks(key, size, block_size, (".parquet",))) == blocks


def test_the_budget_refuses_rather_than_overcommits() -> None:
    budget = Budget(250)
    assert budget.take(100) and budget.take(100)
    assert not budget.take(100)
    budget.give_back(100)
    assert budget.take(100)
    assert budget.in_flight == 200


@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1)), max_size=20))
def test_a_response_that_does_not_continue_the_last_read_prefetches_only_its_whole_blocks(
    responses: list[tuple[int, int]],
) -> None:
    ahead = ReadAhead()
    next_byte = None
    for a, b in responses:
        start, end = min(a, b), max(a, b)
        chained = start == next_byte
        at = start
        while at <= end:  # noted block by block, as a long response is
            last = min((at // B + 1) * B - 1, end)
            for block in ahead.on_read("o", at, last, SIZE, B, Span(start, end)):
                assert chained or (block + 1) * B - 1 <= end, (start, end, block)
            at = last + 1
        next_byte = end + 1
