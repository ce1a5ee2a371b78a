"""Read-ahead decisions: sequential readers get a growing window, random ones get none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("gap", [0, 1, 99])
def test_small_gaps_inside_the_next_block_still_count_as_sequential(gap: int) -> None:
    ahead = ReadAhead()
    reads(ahead, [(0, 99)])
    assert reads(ahead, [(100 + gap, 150 + gap)]) != [[]]


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
    [("t/x.parquet", 10 << 20, 1 << 20, [9]), ("t/x.parquet", (10 << 20) + 5, 1 << 20, [9, 10]),
     ("t/x.parquet", 100, 1 << 20, []), ("t/x.csv", 10 << 20, 1 << 20, []),
     ("x.parquet", 1 << 20, 16 << 10, [60, 61, 62, 63])],
)  # fmt: skip
def test_columnar_files_get_the_blocks_of_their_last_64_kib(
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
