"""Where object metadata lives: a count-bounded LRU in RAM, backed by the disk tier.

Metadata is small and read on every request, so RAM holds far more entries than blocks; the
disk copy is what lets a restarted proxy serve its disk tier without asking the upstream again.
"""

from __future__ import annotations

from cachetools import LRUCache

from tiering.blocks import ObjectId
from tiering.disk import DiskTier
from tiering.epochs import WriteEpochs
from tiering.meta import ObjectMeta, meta_from_bytes, meta_to_bytes


class MetaStore:
    """ObjectId -> ObjectMeta, in RAM first and on disk when there is a disk tier."""

    def __init__(
        self,
        disk: DiskTier | None,
        epochs: WriteEpochs | None = None,
        max_entries: int = 200_000,
    ) -> None:
        # Each entry remembers the write epoch it was read under: once a write (in any worker)
        # has moved the key's epoch, the entry is no longer believed.
        self._ram: LRUCache[ObjectId, tuple[ObjectMeta, int]] = LRUCache(maxsize=max_entries)
        self._disk = disk
        self.epochs = epochs if epochs is not None else WriteEpochs()

    def peek(self, obj: ObjectId) -> ObjectMeta | None:
        entry = self._ram.get(obj)
        if entry is None:
            return None
        if entry[1] != self.epochs.current(obj):
            del self._ram[obj]
            return None
        return entry[0]

    async def load(self, obj: ObjectId) -> ObjectMeta | None:
        """The disk copy, now also kept in RAM; None when there is none, or when a write since
        it was stored (in this server run) has made it stale."""
        if self._disk is None:
            return None
        epoch = self.epochs.current(obj)  # a write during the read makes what it read stale
        data = await self._disk.get_record(_disk_key(obj))
        if data is None:
            return None
        stamp, _, body = data.partition(b"\n")
        if stamp.startswith(b"{"):
            stamp, body = b"", data  # written before records were stamped
        if stamp == self._stamp(epoch):
            pass
        elif stamp.rpartition(b":")[0] == self.epochs.run.encode():
            return None  # stored under an earlier epoch of this run: a write came since
        meta = meta_from_bytes(body)
        if meta is not None:
            self._ram[obj] = (meta, epoch)
        return meta

    def remember(self, obj: ObjectId, meta: ObjectMeta) -> None:
        """RAM only, synchronously, so waiters see it before any await."""
        self._ram[obj] = (meta, self.epochs.current(obj))

    async def persist(self, obj: ObjectId, meta: ObjectMeta, epoch: int) -> None:
        """Store metadata read under `epoch` unless a write has come since. The record carries
        the epoch it was read under: a write that lands while it is being stored (its delete
        may run first) leaves a record that `load` knows is stale, and that is removed here."""
        if self._disk is None or self.epochs.current(obj) != epoch:
            return
        key = _disk_key(obj)
        await self._disk.put_record(key, self._stamp(epoch) + b"\n" + meta_to_bytes(meta))
        if self.epochs.current(obj) != epoch:
            await self._disk.delete_record(key)

    def _stamp(self, epoch: int) -> bytes:
        return f"{self.epochs.run}:{epoch}".encode()

    async def drop(self, obj: ObjectId) -> None:
        """Forget the object, after its epoch has moved (the caller's `bump`): a record that a
        persist begun under the old epoch stores after this looked is removed by that persist
        itself, so looking before deleting misses nothing."""
        self._ram.pop(obj, None)
        if self._disk is not None:
            await self._disk.delete_record(_disk_key(obj))

    async def under(self, bucket: str, prefix: str) -> set[ObjectId]:
        """Every object with metadata cached under a prefix, in RAM or on disk."""
        found = {
            o for o in list(self._ram.keys()) if o.bucket == bucket and o.key.startswith(prefix)
        }
        if self._disk is not None:
            for _, b, k in await self._disk.record_keys("meta"):
                if b == bucket and k.startswith(prefix):
                    found.add(ObjectId(b, k))
        return found


def _disk_key(obj: ObjectId) -> tuple[str, str, str]:
    return ("meta", obj.bucket, obj.key)
