"""A block arriving from the upstream (tiering/arrival.py): readers follow it as it fills, and
its last byte is theirs only once it is whole and checked."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from tiering.arrival import Arrival
from tiering.upstream import UpstreamBroken


async def _collect(arrival: Arrival, start: int, end: int, into: list[bytes]) -> None:
    async for view in arrival.follow(start, end):
        into.append(bytes(view))


def test_readers_get_bytes_as_they_arrive_but_the_last_byte_only_when_finished() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=100, length=10)
        got: list[bytes] = []
        reader = asyncio.ensure_future(_collect(arrival, 100, 109, got))
        arrival.write(b"abcd")
        await asyncio.sleep(0)
        assert b"".join(got) == b"abcd"
        arrival.write(b"efghij")
        await asyncio.sleep(0)
        assert b"".join(got) == b"abcdefghi"  # all but the last, until the block is checked
        assert not arrival.done.done()
        arrival.finish()
        await reader
        assert b"".join(got) == b"abcdefghij"
        assert arrival.done.result() == b"abcdefghij"

    asyncio.run(scenario())


def test_a_reader_of_a_slice_gets_only_its_bytes() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=0, length=8)
        arrival.write(b"01234567")
        arrival.finish()
        got: list[bytes] = []
        await _collect(arrival, 3, 20, got)
        assert b"".join(got) == b"34567"

    asyncio.run(scenario())


def test_a_failed_arrival_leaves_its_readers_short_and_stores_nothing() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=0, length=6)
        got: list[bytes] = []
        reader = asyncio.ensure_future(_collect(arrival, 0, 5, got))
        arrival.write(b"abcdef")  # every byte came, but the checks have not passed
        await asyncio.sleep(0)
        arrival.fail(UpstreamBroken("the object's bytes do not match its ETag"))
        with pytest.raises(UpstreamBroken):
            await reader
        assert b"".join(got) == b"abcde"
        assert isinstance(arrival.done.exception(), UpstreamBroken)

    asyncio.run(scenario())


def test_a_cancelled_reader_does_not_disturb_the_others() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=0, length=4)
        first: list[bytes] = []
        second: list[bytes] = []
        gone = asyncio.ensure_future(_collect(arrival, 0, 3, first))
        stays = asyncio.ensure_future(_collect(arrival, 0, 3, second))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        arrival.write(b"wxyz")
        arrival.finish()
        await stays
        assert b"".join(second) == b"wxyz"
        assert gone.cancelled()

    asyncio.run(scenario())


def test_more_bytes_than_the_block_holds_are_refused_and_finish_needs_every_byte() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=0, length=3)
        with pytest.raises(UpstreamBroken):
            arrival.write(b"abcd")
        arrival.write(b"ab")
        with pytest.raises(UpstreamBroken):
            arrival.finish()

    asyncio.run(scenario())


def test_a_reader_behind_the_arrival_reads_across_pieces_and_on_after_the_join() -> None:
    async def scenario() -> None:
        arrival = Arrival(at=10, length=12)
        for piece in (b"abc", b"defg", b"hi", b"jkl"):
            arrival.write(piece)
        got: list[bytes] = []
        follower = arrival.follow(14, 21)
        got.append(bytes(await anext(follower)))  # from inside the second piece, to its end
        arrival.finish()
        await asyncio.sleep(0)  # the block is joined for the tiers meanwhile
        assert arrival.done.result() == b"abcdefghijkl"
        async for view in follower:
            got.append(bytes(view))
        assert got[0] == b"efg"
        assert b"".join(got) == b"efghijkl"

    asyncio.run(scenario())


def test_an_md5_that_does_not_match_fails_the_finish() -> None:
    async def scenario() -> None:
        good = Arrival(at=0, length=3, md5=hashlib.md5(b"abc").hexdigest())
        good.write(b"ab")
        good.write(b"c")
        good.finish()
        bad = Arrival(at=0, length=3, md5=hashlib.md5(b"abd").hexdigest())
        bad.write(b"abc")
        with pytest.raises(UpstreamBroken):
            bad.finish()
        assert bad.released() == 2

    asyncio.run(scenario())
