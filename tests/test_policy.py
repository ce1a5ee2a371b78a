"""Admission and eviction policies: scripted tables, scan resistance, byte accounting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiering.policy import FrequencySketch, LRUPolicy, Policy, TinyLFUPolicy

Factory = Callable[[int], Policy]
BOTH: list[Factory] = [LRUPolicy, TinyLFUPolicy]
HIT = "hit"


def play(policy: Policy, script: str, sizes: dict[str, int]) -> list[object]:
    """Request each key of `script` in turn: "hit", or the keys evicted by admitting it.

    Keys go to the policy as integers: their hashes, and so the sketch's cells, are the same
    in every process (a str's hash is salted per process).
    """
    outcomes: list[object] = []
    for now, letter in enumerate(script.split()):
        key, size = ord(letter), sizes[letter]
        if policy.access(key, size, float(now)):
            outcomes.append(HIT)
        else:
            outcomes.append([chr(k) for k in policy.admit(key, size, float(now))])  # type: ignore[arg-type]
    return outcomes


UNIT = dict.fromkeys("abcdefgh", 1)
# TinyLFU at 100 bytes: a 1-byte window, so every 33-byte entry goes straight to the
# admission contest for main (99 bytes: three entries), whose protected part holds two.
THIRDS = {**dict.fromkeys("abcd", 33), "e": 66}


@pytest.mark.parametrize(
    ("factory", "capacity", "sizes", "script", "outcomes"),
    [
        pytest.param(
            LRUPolicy,
            3,
            UNIT,
            "a b c a d",
            [[], [], [], HIT, ["b"]],
            id="lru_evicts_the_least_recently_used_entry",
        ),
        pytest.param(
            LRUPolicy,
            4,
            {"a": 1, "b": 1, "c": 2, "d": 3},
            "a b c d",
            [[], [], [], ["a", "b", "c"]],
            id="lru_evicts_as_many_entries_as_the_new_bytes_need",
        ),
        pytest.param(
            LRUPolicy,
            2,
            UNIT,
            "a b a b c c",
            [[], [], HIT, HIT, ["a"], HIT],
            id="lru_hits_whatever_it_holds",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c a b",
            [[], [], [], HIT, HIT],
            id="tinylfu_admits_freely_while_main_has_room",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c d",
            [[], [], [], ["d"]],
            id="tinylfu_turns_away_a_newcomer_no_more_frequent_than_its_victim",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c d d",
            [[], [], [], ["d"], ["a"]],
            id="tinylfu_admits_a_newcomer_more_frequent_than_its_victim",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c a d d",
            [[], [], [], HIT, ["d"], ["b"]],
            id="tinylfu_protects_an_entry_hit_again",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c e e",
            [[], [], [], ["e"], ["a", "b"]],
            id="tinylfu_lets_a_big_newcomer_displace_every_entry_it_outranks",
        ),
        pytest.param(
            TinyLFUPolicy,
            100,
            THIRDS,
            "a b c b c e e",
            [[], [], [], HIT, HIT, ["e"], ["a", "e"]],
            id="tinylfu_rejects_a_big_newcomer_at_the_first_entry_it_does_not_outrank",
        ),
    ],
)
def test_scripted_requests_hit_and_evict_as_the_policy_says(
    factory: Factory, capacity: int, sizes: dict[str, int], script: str, outcomes: list[object]
) -> None:
    assert play(factory(capacity), script, sizes) == outcomes


@pytest.mark.parametrize("factory", BOTH)
def test_an_entry_larger_than_the_capacity_is_never_admitted(factory: Factory) -> None:
    policy = factory(100)
    assert policy.admit("big", 101, 0.0) == ["big"]
    assert "big" not in policy
    assert policy.used_bytes == 0
    assert not policy.access("big", 101, 1.0)


@pytest.mark.parametrize("factory", BOTH)
def test_remove_forgets_the_entry_and_its_bytes(factory: Factory) -> None:
    policy = factory(100)
    policy.admit("a", 30, 0.0)
    policy.admit("b", 20, 1.0)
    policy.remove("a")
    policy.remove("never-there")
    assert "a" not in policy
    assert "b" in policy
    assert policy.used_bytes == 20


@pytest.mark.parametrize("factory", BOTH)
def test_admitting_a_resident_key_changes_nothing(factory: Factory) -> None:
    policy = factory(100)
    policy.admit("a", 30, 0.0)
    assert policy.admit("a", 30, 1.0) == []
    assert policy.used_bytes == 30


def survivors_of_a_scan(policy: Policy, scan_entry_bytes: int) -> int:
    """A hot set of 20 x 10 bytes requested 5 times, then 10x the capacity in one-hit keys."""
    hot = range(20)
    now = 0.0
    for _ in range(5):
        for key in hot:
            now += 1
            if not policy.access(key, 10, now):
                policy.admit(key, 10, now)
    for key in range(1000, 1000 + 10 * policy.capacity_bytes // scan_entry_bytes):
        now += 1
        assert not policy.access(key, scan_entry_bytes, now)
        policy.admit(key, scan_entry_bytes, now)
    return sum(key in policy for key in hot)


@pytest.mark.parametrize(
    ("factory", "scan_entry_bytes", "survivors"),
    [
        pytest.param(TinyLFUPolicy, 10, 20, id="tinylfu_keeps_the_hot_set_through_a_scan"),
        pytest.param(TinyLFUPolicy, 50, 20, id="tinylfu_keeps_the_hot_set_through_a_big_scan"),
        pytest.param(LRUPolicy, 10, 0, id="lru_loses_the_hot_set_to_a_scan"),
        pytest.param(LRUPolicy, 50, 0, id="lru_loses_the_hot_set_to_a_big_scan"),
    ],
)
def test_a_scan_of_ten_times_the_capacity_and_the_hot_set(
    factory: Factory, scan_entry_bytes: int, survivors: int
) -> None:
    assert survivors_of_a_scan(factory(1000), scan_entry_bytes) == survivors


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["get", "get", "remove", "resize"]), st.integers(0, 19))
)


@pytest.mark.parametrize("factory", BOTH)
@given(
    capacity=st.integers(1, 300),
    sizes=st.lists(st.integers(1, 120), min_size=20, max_size=20),
    operations=OPERATIONS,
)
def test_byte_accounting_stays_exact_and_within_capacity(
    factory: Factory, capacity: int, sizes: list[int], operations: list[tuple[str, int]]
) -> None:
    policy = factory(capacity)
    resident: set[int] = set()
    for now, (operation, key) in enumerate(operations):
        if operation == "remove":
            policy.remove(key)
            resident.discard(key)
        elif operation == "resize":  # a budget shared with other workers grows and shrinks
            capacity = 1 + 16 * key
            evicted = policy.resize(capacity)
            assert set(evicted) <= resident
            resident -= set(evicted)
        elif policy.access(key, sizes[key], float(now)):
            assert key in resident
        else:
            assert key not in resident
            evicted = policy.admit(key, sizes[key], float(now))
            assert len(evicted) == len(set(evicted))
            resident = (resident | {key}) - set(evicted)
        assert resident == {k for k in range(20) if k in policy}
        assert policy.used_bytes == sum(sizes[k] for k in resident)
        assert policy.used_bytes <= capacity


def test_the_sketch_counts_each_key_up_to_fifteen() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(1000)
    for i in range(20):
        sketch.increment("hot")
        if i < 3:
            sketch.increment("warm")
    assert (sketch.frequency("hot"), sketch.frequency("warm"), sketch.frequency("cold")) == (
        15,
        3,
        0,
    )


def test_the_sketch_halves_every_count_after_its_sample_period() -> None:
    sketch = FrequencySketch(sample_factor=10)
    sketch.ensure_capacity(10)  # a sample of 100 increments
    for _ in range(8):
        sketch.increment("kept")
    for i in range(92):
        sketch.increment(i)
    assert sketch.frequency("kept") == 4


def test_growing_the_sketch_keeps_every_count() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(4)
    for key, times in [("a", 5), ("b", 2)]:
        for _ in range(times):
            sketch.increment(key)
    sketch.ensure_capacity(4096)
    assert sketch.frequency("a") >= 5
    assert sketch.frequency("b") >= 2
