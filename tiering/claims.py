"""Claims: one upstream fetch per block across the worker processes of one server.

Within a process, single flight makes one fetch of a block however many wait for it
(tiering/singleflight.py). Across processes, a block fetched by one worker reaches the others
through the shared disk tier, so each worker asks for the block's *claim* before it fetches:
an advisory lock (`flock`) on one of a fixed set of slot files beside the disk tier's folder,
chosen by a stable hash of (bucket, key, block). The holder looks at the disk tier once more
(another worker may have stored the block between its first look and the claim), fetches and
stores the block, then lets go; a worker that had to wait finds it there.

A claim is only ever a saving: two workers that disagree (a slot shared by two blocks, a
claim given up after `WAIT_LIMIT_S`) fetch twice, never return wrong bytes (blocks are keyed by
ETag and stored whole). The kernel drops a killed holder's lock, so a crash leaves no claim
behind. Waiting polls the lock (no thread): claims are contended only while a block is cold.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time

import xxhash

SLOTS = 4096
POLL_S = 0.002
WAIT_LIMIT_S = 30.0  # an upstream read stalls for its own timeout at most; then fetch anyway
ClaimKey = tuple[str, str, int]  # bucket, key, block index: the same for every version


class Claim:
    """A held claim (or one given up on: `held` False); `waited` says another worker had it."""

    __slots__ = ("_claims", "_slot", "held", "waited")

    def __init__(self, claims: Claims, slot: int, held: bool, waited: bool) -> None:
        self._claims = claims
        self._slot = slot
        self.held = held
        self.waited = waited
        if held:  # a holder that never lets go (a step skipped by cancellation) is outlived
            asyncio.get_running_loop().call_later(WAIT_LIMIT_S, self.release)

    def release(self) -> None:
        if self.held:
            self.held = False
            self._claims._let_go(self._slot)


class Claims:
    """The slot files of one server, opened by each worker as it needs them."""

    def __init__(self, folder: str, slots: int = SLOTS) -> None:
        os.makedirs(folder, exist_ok=True)
        self._folder = folder
        self._slots = slots
        self._fds: dict[int, int] = {}
        self._holders: dict[int, int] = {}  # slot -> claims held in this process
        self.waits = 0  # claims another worker held: fetches this one did not make

    def slot(self, key: ClaimKey) -> int:
        bucket, name, index = key
        return xxhash.xxh3_64_intdigest(f"{bucket}\0{name}\0{index}".encode()) % self._slots

    async def hold(self, key: ClaimKey) -> Claim:
        """The claim on a block, once no other worker holds it (or `WAIT_LIMIT_S` passed)."""
        slot = self.slot(key)
        waited = False
        deadline = time.monotonic() + WAIT_LIMIT_S
        while True:
            # The lock belongs to the process: held here already, it is shared, not waited for.
            if self._holders.get(slot, 0) > 0 or self._lock(slot):
                self._holders[slot] = self._holders.get(slot, 0) + 1
                return Claim(self, slot, held=True, waited=waited)
            if not waited:
                waited = True
                self.waits += 1
            if time.monotonic() > deadline:
                return Claim(self, slot, held=False, waited=True)
            await asyncio.sleep(POLL_S)

    def _lock(self, slot: int) -> bool:
        try:
            fcntl.flock(self._fd(slot), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _let_go(self, slot: int) -> None:
        left = self._holders.get(slot, 0) - 1
        if left > 0:
            self._holders[slot] = left
            return
        self._holders.pop(slot, None)
        fcntl.flock(self._fds[slot], fcntl.LOCK_UN)

    def _fd(self, slot: int) -> int:
        fd = self._fds.get(slot)
        if fd is None:
            path = os.path.join(self._folder, f"{slot:04x}")
            fd = self._fds[slot] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._holders.clear()
