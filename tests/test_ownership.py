"""Rendezvous hashing (tiering/ownership.py): one owner per block, agreed without talking, and
a member leaving or joining moves only its own share."""

from __future__ import annotations

import random

import pytest

from tiering.ownership import block_id, owner, ranked

BLOCKS = [block_id("b", f"obj-{i}", i % 7) for i in range(6000)]


def members(n: int) -> list[str]:
    return [f"http://127.0.0.{i + 1}:8080" for i in range(n)]


def owners(fleet: list[str]) -> list[str]:
    return [owner(fleet, b) for b in BLOCKS]


def test_the_owner_is_the_same_whatever_order_the_members_are_listed_in() -> None:
    fleet = members(5)
    shuffled = random.Random(3).sample(fleet, len(fleet))
    assert owners(fleet) == owners(shuffled)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_each_member_owns_about_an_equal_share(n: int) -> None:
    got = owners(members(n))
    for m in members(n):
        assert abs(got.count(m) / len(BLOCKS) - 1 / n) < 0.25 / n


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_a_member_leaving_moves_only_the_blocks_it_owned(n: int) -> None:
    fleet = members(n)
    before = owners(fleet)
    gone = fleet[1]
    after = owners([m for m in fleet if m != gone])
    moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert all(before[i] == gone for i in moved)  # nobody else's blocks move
    assert len(moved) == before.count(gone)  # and all of the leaver's do
    assert abs(len(moved) / len(BLOCKS) - 1 / n) < 0.25 / n  # about 1/N


def test_a_member_joining_takes_about_one_share_and_only_from_others_shares() -> None:
    fleet = members(4)
    before = owners(fleet)
    after = owners([*fleet, "http://127.0.0.9:8080"])
    moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert all(after[i] == "http://127.0.0.9:8080" for i in moved)
    assert abs(len(moved) / len(BLOCKS) - 1 / 5) < 0.05


def test_the_ranking_starts_with_the_owner_and_names_every_member_once() -> None:
    fleet = members(4)
    for b in BLOCKS[:200]:
        order = ranked(fleet, b)
        assert order[0] == owner(fleet, b)
        assert sorted(order) == sorted(fleet)


def test_the_blocks_of_one_object_spread_over_the_fleet() -> None:
    fleet = members(3)
    blocks = [block_id("b", "big", i) for i in range(300)]
    assert {owner(fleet, b) for b in blocks} == set(fleet)
    assert block_id("b", "k\x001", 0) != block_id("b", "k", 10)  # joined unambiguously


def test_an_empty_fleet_has_no_owner() -> None:
    with pytest.raises(ValueError):
        owner([], BLOCKS[0])
