"""Every size setting, alone at its smallest and its largest sensible value, starts a real
`s3tier serve` that answers its probe and carries a PUT and GETs through.

The servers of this module start (and stop) together: they are independent processes, and a
start is mostly interpreter start-up, so the table costs far less than its cases one by one.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from config.settings import SETTINGS_BY_NAME
from tests.harness import S3TierServer, s3_client
from tests.test_size_settings import EXTREMES
from tests.upstream_shim import UpstreamShim

# The pure table's extremes (tests/test_size_settings.py), less those that only repeat a case
# here (a RAM tier of 64KiB, a read-ahead budget under a block) or are no size (readahead_max),
# and two workers rather than four: every worker is a full interpreter start, and two already
# share the disk tier and hold budgets per process. About 1.4 s of CPU per server.
LEFT_OUT = {("ram_bytes", "64KiB"), ("prefetch_bytes", "64KiB"), ("readahead_max", "1"),
            ("readahead_max", "1024"), ("workers", "1")}  # fmt: skip
CASES = [(name, "2" if name == "workers" else value)
         for name, value in EXTREMES if (name, value) not in LEFT_OUT]  # fmt: skip
IDS = [f"{name}={value}" for name, value in CASES]
BODY = os.urandom(3 * 2**19 + 123)  # 1.5MiB and a bit: 25 blocks of 64KiB, one of 64MiB


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, shim: UpstreamShim
) -> Iterator[dict[str, S3TierServer | BaseException]]:
    """One server per case, started at once; a case that did not start holds its error."""
    made = {
        case_id: S3TierServer(
            tmp_path_factory.mktemp("sizes"), shim.url, SETTINGS_BY_NAME[name].flag, value
        )
        for case_id, (name, value) in zip(IDS, CASES, strict=True)
    }
    with ThreadPoolExecutor(max_workers=len(made)) as pool:
        try:
            yield dict(zip(made, pool.map(_start, made.values()), strict=True))
        finally:
            list(pool.map(S3TierServer.stop, made.values()))


def _start(server: S3TierServer) -> S3TierServer | BaseException:
    try:
        server.start()
    except Exception as exc:  # reported by the case's own test, with the server's log
        return RuntimeError(f"{exc}\n{server.log_text()[-2000:]}")
    return server


def effective_config(server: S3TierServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/_s3tier/config", timeout=5) as answer:
        document = json.load(answer)
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize(("name", "value"), CASES, ids=IDS)
def test_a_server_with_one_size_set_alone_starts_and_serves(
    servers: dict[str, S3TierServer | BaseException], bucket: str, name: str, value: str
) -> None:
    server = servers[f"{name}={value}"]
    if isinstance(server, BaseException):
        raise server
    with urllib.request.urlopen(server.url + "/_s3tier/healthz", timeout=5) as answer:
        assert answer.status == 200
    s3: Any = s3_client(server.url)
    s3.put_object(Bucket=bucket, Key="k", Body=BODY)
    for _ in range(2):  # cold, then from whatever tier kept it
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == BODY
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=70000-200000")["Body"].read()
    assert ranged == BODY[70000:200001]


def test_the_issues_command_line_starts_with_the_object_limit_following_ram(
    servers: dict[str, S3TierServer | BaseException],
) -> None:
    server = servers["ram_bytes=2MiB"]
    if isinstance(server, BaseException):
        raise server
    config = effective_config(server)
    assert (config["ram_bytes"], config["ram_max_object_bytes"]) == (2 * 2**20, 2**19)
