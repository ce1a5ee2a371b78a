"""A disk folder filled under one --block-size and served under another: blocks are named by
index, so the old ones must never be served as the new ones (found by restarting with 512KiB
blocks over a folder of 1MiB ones: right length, wrong bytes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness import S3TierServer, s3_client
from tiering.disk import LAYOUT_FILE, adopt_layout, cache_folder

SERVE_FROM_DISK = ("--ram-bytes", "0", "--freshness", "immutable")


def test_restarting_with_another_block_size_serves_the_objects_bytes(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str, tmp_path: Path
) -> None:
    body = os.urandom(3 << 19)  # 1.5 MiB: a whole and a short block at 1MiB, three at 512KiB
    direct.put_object(Bucket=bucket, Key="k", Body=body)
    workdir = tmp_path / "one-folder"
    first = start_s3tier(*SERVE_FROM_DISK, "--block-size", "1MiB", workdir=workdir)
    client: Any = s3_client(first.url)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    first.stop()

    second = start_s3tier(*SERVE_FROM_DISK, "--block-size", "512KiB", workdir=workdir)
    client = s3_client(second.url)
    got = client.get_object(Bucket=bucket, Key="k")
    assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(body).hexdigest()
    assert "another block size" in second.log_text()


def test_a_folder_of_another_block_size_is_set_aside_and_the_same_one_is_kept(
    tmp_path: Path,
) -> None:
    folder = cache_folder(str(tmp_path))
    os.makedirs(folder)
    Path(folder, "cache.db").write_bytes(b"index")
    assert adopt_layout(str(tmp_path), 1 << 20) is True  # no layout recorded: not trusted
    assert not os.path.exists(os.path.join(folder, "cache.db"))
    os.makedirs(folder, exist_ok=True)
    Path(folder, "cache.db").write_bytes(b"index")
    assert adopt_layout(str(tmp_path), 1 << 20) is False
    assert os.path.exists(os.path.join(folder, "cache.db"))
    assert adopt_layout(str(tmp_path), 1 << 19) is True
    assert Path(tmp_path, LAYOUT_FILE).read_text() == f"block_size={1 << 19}\n"


def test_a_folder_that_holds_a_users_files_is_never_set_aside(tmp_path: Path) -> None:
    folder = cache_folder(str(tmp_path))
    os.makedirs(folder)
    Path(folder, "cache.db").write_bytes(b"index")
    Path(folder, "notes.txt").write_text("mine")
    adopt_layout(str(tmp_path), 1 << 20)
    assert Path(folder, "notes.txt").read_text() == "mine"
