"""Broken disks degrade to pass-through (issue 7, §2.5): a disk tier that is too small, full
(ENOSPC), or turns read-only under a running server still lets every request get the right bytes
from the upstream, never a 500 because of the cache, and the degradation shows in the metrics,
the readiness probe and the log.

These tests run as root here, and root ignores file modes (CAP_DAC_OVERRIDE): `chmod 0500` on
the disk folder changes nothing. So a full disk is a tmpfs mounted with a tiny size (the kernel
answers ENOSPC), and an unwritable disk is the folder made immutable with `chattr -R +i` while
s3tier runs, which refuses every write, by root too and through descriptors already open
(remounting a tmpfs read-only is refused while SQLite holds its index open for writing). Where
neither is allowed (not root, a filesystem without attributes) those tests are skipped; the
too-small and cannot-be-opened cases need no privilege.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import S3TierServer

KiB = 1 << 10
MiB = 1 << 20


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a size-limited tmpfs on demand; unmounted after the servers using it stopped
    (request this fixture before start_s3tier, so it is torn down after it)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs-{len(mounted)}"
        mount_tmpfs(where, size)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make a folder and everything in it immutable (chattr +i): no file can be created,
    written, renamed or deleted there, by root either, even through a descriptor already open.
    Undone at teardown, after the servers using it stopped."""
    frozen: list[Path] = []

    def freeze(folder: Path) -> None:
        done = subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make files immutable here ({done.stderr.strip()})")
        frozen.append(folder)

    yield freeze
    for folder in frozen:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)


def seed(direct: Any, bucket: str, count: int, low: int, high: int) -> dict[str, bytes]:
    rng = random.Random(f"{bucket}:{count}")
    objects = {f"obj-{i:03d}": os.urandom(rng.randint(low, high)) for i in range(count)}
    for key, data in objects.items():
        direct.put_object(Bucket=bucket, Key=key, Body=data)
    return objects


def read_all(server: S3TierServer, bucket: str, objects: dict[str, bytes], rounds: int) -> None:
    """Every object, `rounds` times in shuffled order: the right bytes, and never a 5xx."""
    keys = list(objects) * rounds
    random.Random(1).shuffle(keys)
    session = requests.Session()
    for key in keys:
        got = session.get(f"{server.url}/{bucket}/{key}", timeout=30)
        assert got.status_code == 200, (key, got.status_code, got.text[:300])
        assert got.content == objects[key], key


def metric(server: S3TierServer, name: str, **labels: str) -> float:
    text = requests.get(f"{server.url}/_s3tier/metrics", timeout=10).text
    wanted = sorted(labels.items())
    for line in text.splitlines():
        found = re.fullmatch(r"([a-z0-9_:]+)(?:\{(.*)\})? (\S+)", line)
        if found is None or found.group(1) != name:
            continue
        have = sorted(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
        if have == wanted:
            return float(found.group(3))
    return 0.0


def disk_errors(server: S3TierServer) -> float:
    return metric(server, "s3tier_tier_errors_total", tier="disk", kind="io")


def value_bytes(folder: Path) -> int:
    """Bytes of the cached values on disk: every file but SQLite's index and its journal."""
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith("cache.db") and "spool" not in p.parts
    )


def test_a_disk_tier_far_smaller_than_the_working_set_still_serves_every_byte(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    capacity = 256 * KiB
    server = start_s3tier(
        "--ram-bytes", "0", "--block-size", "64KiB", "--disk-bytes", str(capacity)
    )
    objects = seed(direct, bucket, 24, 100_000, 300_000)  # about 5 MiB: 20 times the tier
    read_all(server, bucket, objects, rounds=3)
    assert metric(server, "s3tier_evictions_total", tier="disk") > 0, "it never had to evict"
    assert metric(server, "s3tier_tier_usage_bytes", tier="disk") <= capacity
    assert value_bytes(server.disk_dir) <= capacity


def test_a_disk_that_fills_up_enospc_degrades_to_pass_through_and_says_so(
    tmpfs: Callable[[str], Path],
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
) -> None:
    folder = tmpfs("768k")  # room for SQLite's index and a few blocks, not for 4 MiB
    server = start_s3tier("--ram-bytes", "0", "--disk-bytes", "1GiB", "--disk-dir", str(folder))
    server.disk_dir = folder
    objects = seed(direct, bucket, 8, 300_000, 700_000)
    read_all(server, bucket, objects, rounds=2)
    assert disk_errors(server) > 0
    log = server.log_text()
    assert "disk tier error" in log, log[-2000:]
    assert re.search(r"No space left|database or disk is full", log), log[-2000:]


def test_a_disk_already_full_at_start_up_still_lets_the_server_start_and_serve(
    tmpfs: Callable[[str], Path],
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
) -> None:
    folder = tmpfs("256k")
    filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(filler)
    server = start_s3tier("--ram-bytes", "0", "--disk-dir", str(folder / "cache"))
    objects = seed(direct, bucket, 3, 50_000, 200_000)
    read_all(server, bucket, objects, rounds=2)


def test_a_disk_that_turns_unwritable_under_a_running_server_degrades_to_pass_through(
    immutable: Callable[[Path], None],
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
) -> None:
    server = start_s3tier("--ram-bytes", "0")
    objects = seed(direct, bucket, 6, 100_000, 1_500_000)
    read_all(server, bucket, objects, rounds=1)  # now on disk
    ready = requests.get(f"{server.url}/_s3tier/readyz", timeout=10)
    assert ready.json()["checks"]["disk"] == "ok"
    immutable(server.disk_dir)
    more = {f"new-{i}": os.urandom(200_000 + i) for i in range(4)}
    for key, data in more.items():
        direct.put_object(Bucket=bucket, Key=key, Body=data)
    read_all(server, bucket, {**objects, **more}, rounds=2)
    ready = requests.get(f"{server.url}/_s3tier/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["disk"] != "ok"
    assert disk_errors(server) > 0
    assert "disk tier error" in server.log_text()


def test_a_disk_folder_path_that_is_a_file_is_left_alone_and_the_server_passes_through(
    tmp_path: Path, start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    # A mistyped --disk-dir naming an existing file: s3tier may refuse the disk tier, but it
    # must neither move nor delete what it did not create.
    precious = tmp_path / "precious.db"
    precious.write_bytes(b"someone else's data")
    server = start_s3tier("--ram-bytes", "0", "--disk-dir", str(precious))
    objects = seed(direct, bucket, 3, 50_000, 200_000)
    read_all(server, bucket, objects, rounds=2)
    assert precious.is_file() and precious.read_bytes() == b"someone else's data"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("precious")) == [
        "precious.db"
    ]


def test_a_disk_folder_whose_index_cannot_be_opened_loses_nothing_s3tier_did_not_write(
    tmp_path: Path, start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    # A folder SQLite cannot open an index in (here `cache.db` is a folder) is not a damaged
    # index to be thrown away with everything beside it.
    folder = tmp_path / "shared"
    (folder / "cache.db").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    server = start_s3tier("--ram-bytes", "0", "--disk-dir", str(folder))
    objects = seed(direct, bucket, 3, 50_000, 200_000)
    read_all(server, bucket, objects, rounds=2)
    assert (folder / "notes.txt").read_text() == "keep me"
