"""Claims across processes: two `Claims` on one folder stand for two workers (each opens its own
slot files, and `flock` locks belong to an open file, so they exclude each other as two
processes would)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tiering.claims import Claims

KEY = ("bucket", "key", 3)


def test_a_claim_held_by_one_worker_makes_the_other_wait_until_it_is_let_go(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        first, second = Claims(str(tmp_path)), Claims(str(tmp_path))
        held = await first.hold(KEY)
        assert held.held and not held.waited
        waiting = asyncio.get_running_loop().create_task(second.hold(KEY))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the other worker holds it
        held.release()
        got = await asyncio.wait_for(waiting, 5)
        assert got.held and got.waited and second.waits == 1
        got.release()
        again = await first.hold(KEY)  # free again
        assert again.held and not again.waited
        again.release()
        first.close()
        second.close()

    asyncio.run(go())


def test_claims_of_one_slot_in_one_process_do_not_wait_for_each_other(tmp_path: Path) -> None:
    async def go() -> None:
        claims, other = Claims(str(tmp_path)), Claims(str(tmp_path))
        a = await claims.hold(KEY)
        b = await claims.hold(KEY)  # in-process, single flight is what keeps fetches apart
        assert a.held and b.held and not b.waited
        a.release()
        blocked = asyncio.get_running_loop().create_task(other.hold(KEY))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # the slot stays claimed while any claim in it is held
        b.release()
        (await asyncio.wait_for(blocked, 5)).release()
        claims.close()
        other.close()

    asyncio.run(go())


def test_a_killed_holder_leaves_no_claim_behind(tmp_path: Path) -> None:
    slot = Claims(str(tmp_path)).slot(KEY)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(tmp_path / f'{slot:04x}')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        async def go() -> bool:
            claims = Claims(str(tmp_path))
            waiting = asyncio.get_running_loop().create_task(claims.hold(KEY))
            await asyncio.sleep(0.05)
            blocked = not waiting.done()
            holder.kill()  # SIGKILL: the kernel drops its lock
            claim = await asyncio.wait_for(waiting, 5)
            took = claim.held and claim.waited
            claim.release()
            claims.close()
            return blocked and took

        assert asyncio.run(go())
    finally:
        holder.kill()
        holder.wait()
    assert os.path.exists(tmp_path / f"{slot:04x}")
