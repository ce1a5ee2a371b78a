"""The fleet's member list (tiering/members.py): parsed from --peers, read from a static list, a
file or DNS, and a change adopted only once it has settled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tiering.members import Membership, MemberSource, Settled, members_of, resolve

A, B, C = "http://127.0.0.1:8080", "http://127.0.0.2:8080", "http://127.0.0.3:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{B}, {A}/,{A}", MemberSource("static", members=(A, B))),
        (
            "dns:s3tier-peers.ns.svc:8080",
            MemberSource("dns", host="s3tier-peers.ns.svc", port=8080),
        ),
        (
            "dns:https://peers:8443",
            MemberSource("dns", host="peers", port=8443, scheme="https"),
        ),
        ("file:/etc/s3tier/peers", MemberSource("file", path="/etc/s3tier/peers")),
    ],
)
def test_peers_are_parsed_from_each_form(text: str, expected: MemberSource) -> None:
    assert MemberSource.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["dns:peers", "dns:peers:http", "dns::8080", "dns:peers:70000", "file:", "ftp://a:1",
     "http://a:1/path", "127.0.0.1:8080", "http://:8080"],
)  # fmt: skip
def test_a_malformed_peers_setting_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="peer"):
        MemberSource.parse(text)


def test_a_change_is_adopted_only_once_it_has_been_seen_unchanged_for_the_settle_time() -> None:
    settled = Settled((A, B, C), settle_s=10)
    assert not settled.offer((A, B), now=0)  # C seems gone
    assert not settled.offer((A, B), now=5)
    assert settled.offer((A, B), now=10.5)
    assert settled.current == (A, B)


def test_a_flapping_member_moves_nothing() -> None:
    settled = Settled((A, B, C), settle_s=10)
    for t in range(0, 60, 4):  # C drops out of every other look
        settled.offer((A, B) if t % 8 else (A, B, C), now=t)
        assert settled.current == (A, B, C)


def test_a_second_change_restarts_the_wait() -> None:
    settled = Settled((A,), settle_s=10)
    settled.offer((A, B), now=0)
    settled.offer((A, B, C), now=8)
    assert not settled.offer((A, B, C), now=12)
    assert settled.offer((A, B, C), now=18)


def test_a_file_source_is_read_again_and_a_change_settles(tmp_path: Path) -> None:
    listing = tmp_path / "peers"
    listing.write_text(f"# the fleet\n{A}\n{B}  # this node\n")

    async def go() -> None:
        membership = Membership(MemberSource.parse(f"file:{listing}"), settle_s=1)
        await membership.start()
        assert membership.members == (A, B)
        listing.write_text(f"{A}\n{B}\n{C}\n")
        assert not await membership.look(now=100)
        assert await membership.look(now=101.5)
        assert membership.members == (A, B, C)
        listing.unlink()  # unreadable: the list in force stays, the failure is counted
        assert not await membership.look(now=200)
        assert membership.members == (A, B, C) and membership.failures == 1

    asyncio.run(go())


def test_a_dns_source_lists_the_addresses_of_the_name() -> None:
    # localhost's A record stands in for a headless Service's Ready pods: loopback only.
    members = asyncio.run(resolve(MemberSource.parse("dns:localhost:8080")))
    assert members == ("http://127.0.0.1:8080",)


def test_members_are_normalised_so_every_node_computes_the_same_ids() -> None:
    assert members_of([f"{B}/", A, f" {A} ", ""]) == (A, B)
