"""Metadata on disk never outlives a write through the proxy: the races between a background
persist, a write's delete and a load, each made to happen in the order that used to leave a
deleted object's metadata on disk (found as a flaky 200 for a GET after a DELETE)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiering.blocks import ObjectId
from tiering.disk import DiskTier
from tiering.epochs import WriteEpochs
from tiering.meta import ObjectMeta
from tiering.metastore import MetaStore

OBJ = ObjectId("bucket", "key")
META = ObjectMeta('"e"', 10, None, (), (), 0.0)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[DiskTier]:
    tier = DiskTier(str(tmp_path / "disk"), 64 << 20)
    yield tier
    tier.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_persist_that_lands_after_the_writes_delete_is_not_believed(disk: DiskTier) -> None:
    store = MetaStore(disk, WriteEpochs())
    epoch = store.epochs.current(OBJ)
    run(store.persist(OBJ, META, epoch))  # the fill's record, landing late:
    store.epochs.bump(OBJ)  # the write had bumped the epoch and run its delete already
    assert run(MetaStore(disk, store.epochs).load(OBJ)) is None


def test_a_persist_under_an_old_epoch_stores_nothing(disk: DiskTier) -> None:
    store = MetaStore(disk, WriteEpochs())
    epoch = store.epochs.current(OBJ)
    store.epochs.bump(OBJ)
    run(store.persist(OBJ, META, epoch))
    assert run(disk.get_record(("meta", OBJ.bucket, OBJ.key))) is None


def test_a_write_during_a_load_leaves_nothing_believed_in_ram(disk: DiskTier) -> None:
    store = MetaStore(disk, WriteEpochs())
    run(store.persist(OBJ, META, store.epochs.current(OBJ)))
    fresh = MetaStore(disk, store.epochs)
    read = disk.get_record

    async def racing_write(key: Any) -> bytes | None:
        data = await read(key)
        store.epochs.bump(OBJ)  # a write lands while the record travels back
        return data

    disk.get_record = racing_write  # type: ignore[method-assign]
    run(fresh.load(OBJ))
    assert fresh.peek(OBJ) is None


def test_records_of_an_earlier_run_and_of_this_epoch_are_served(disk: DiskTier) -> None:
    earlier = MetaStore(disk, WriteEpochs())
    earlier.epochs.bump(OBJ)
    run(earlier.persist(OBJ, META, earlier.epochs.current(OBJ)))
    assert run(MetaStore(disk, earlier.epochs).load(OBJ)) == META
    restarted = MetaStore(disk, WriteEpochs())  # counters start again at zero
    assert run(restarted.load(OBJ)) == META
    assert restarted.peek(OBJ) == META
