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
        """The disk copy, now also kept in RAM; None when there is none."""
        if self._disk is None:
            return None
        data = await self._disk.get_record(_disk_key(obj))
        meta = meta_from_bytes(data) if data is not None else None
        if meta is not None:
            self.remember(obj, meta)
        return meta

    def remember(self, obj: ObjectId, meta: ObjectMeta) -> None:
        """RAM only, synchronously, so waiters see it before any await."""
        self._ram[obj] = (meta, self.epochs.current(obj))

    async def persist(self, obj: ObjectId, meta: ObjectMeta) -> None:
        if self._disk is not None:
            await self._disk.put_record(_disk_key(obj), meta_to_bytes(meta))

    async def drop(self, obj: ObjectId) -> None:
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
