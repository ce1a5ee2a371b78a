"""A fleet of three real s3tier processes on 127.0.0.1, 127.0.0.2 and 127.0.0.3 in front of one
real upstream (moto, behind the recording shim): each block has one owner, and the fleet
fetches it from the upstream once (tiering/peers.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import S3TierServer
from tests.upstream_shim import UpstreamShim
from tiering.ownership import block_id, owner
from tiering.peerauth import HEADER, sign
from tiering.peers import OPEN_S

MiB = 1 << 20
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SECRET = "fleet-test-secret"


def port_free_on_every_host() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((HOSTS[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in HOSTS[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on all three loopback addresses")


@contextlib.contextmanager
def started_fleet(
    tmp_path: Path, shim: UpstreamShim, *extra: str, views: list[list[int]] | None = None
) -> Iterator[list[S3TierServer]]:
    """Three members; `views[i]` lists the members node i believes in (default: all)."""
    port = port_free_on_every_host()
    urls = [f"http://{host}:{port}" for host in HOSTS]
    nodes = []
    for i, host in enumerate(HOSTS):
        (tmp_path / f"node-{i}").mkdir()
        peers = ",".join(urls[j] for j in (views[i] if views else range(len(HOSTS))))
        # immutable: a node never revalidates by itself; only the fleet makes it see a write
        flags = ("--peers", peers, "--peer-secret", SECRET, "--freshness", "immutable", *extra)
        nodes.append(S3TierServer(tmp_path / f"node-{i}", shim.url, *flags, host=host, port=port))
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def fleet(tmp_path: Path, shim: UpstreamShim) -> Iterator[list[S3TierServer]]:
    with started_fleet(tmp_path, shim) as nodes:
        yield nodes


def metric(server: S3TierServer, name: str, token: str | None = None, **labels: str) -> float:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    text = requests.get(f"{server.url}/_s3tier/metrics", headers=auth, timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def upstream_body_bytes(shim: UpstreamShim, bucket: str, key: str) -> int:
    return sum(r.body_bytes for r in shim.matching("GET", f"/{bucket}/{key}"))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_herd_over_three_nodes_fetches_each_block_from_the_upstream_once(
    tmp_path: Path, direct: Any, bucket: str, shim: UpstreamShim, workers: int
) -> None:
    data = os.urandom(16 * MiB)
    direct.put_object(Bucket=bucket, Key="herd", Body=data)
    digest = hashlib.sha256(data).hexdigest()

    def read(i: int) -> tuple[int, str]:
        got = requests.get(f"{fleet[i % 3].url}/{bucket}/herd", timeout=60)
        return got.status_code, hashlib.sha256(got.content).hexdigest()

    # With several workers a node's own workers also race for a block: its claims settle that.
    flags = ("--workers", str(workers))
    with started_fleet(tmp_path, shim, *flags) as fleet, ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(read, range(48)))
    assert answers == [(200, digest)] * 48
    fetched = [r.headers.get("Range", "") for r in shim.matching("GET", f"/{bucket}/herd")]
    twice = sorted({r for r in fetched if fetched.count(r) > 1})
    assert upstream_body_bytes(shim, bucket, "herd") == len(data), twice  # 1.00x the object


def test_every_node_serves_the_blocks_it_does_not_own_from_their_owners(
    fleet: list[S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(6 * MiB + 123)
    direct.put_object(Bucket=bucket, Key="spread", Body=data)
    for node in fleet:  # one reader after another, each on its own node
        got = requests.get(f"{node.url}/{bucket}/spread", timeout=60)
        assert got.content == data
        ranged = requests.get(
            f"{node.url}/{bucket}/spread", headers={"Range": "bytes=3145000-4194400"}, timeout=60
        )
        assert (ranged.status_code, ranged.content) == (206, data[3145000:4194401])
    assert upstream_body_bytes(shim, bucket, "spread") == len(data)


def test_a_block_from_its_owners_cache_is_a_peer_hit_then_a_ram_hit_where_it_is_hot(
    fleet: list[S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(300_000)
    direct.put_object(Bucket=bucket, Key="hot", Body=data)
    members = [node.url for node in fleet]
    home = fleet[members.index(owner(members, block_id(bucket, "hot", 0)))]
    other = next(node for node in fleet if node is not home)
    statuses = []
    for node in (home, other, other):
        got = requests.get(f"{node.url}/{bucket}/hot", timeout=30)
        assert got.content == data
        statuses.append(got.headers["x-cache-status"])
    # The owner fills from S3; another member gets it from the owner's RAM, then keeps it in
    # its own RAM (a hot block is read where it is read, not from its owner every time).
    assert statuses == ["MISS", "HIT-PEER", "HIT-RAM"]
    assert upstream_body_bytes(shim, bucket, "hot") == len(data)
    deadline = time.monotonic() + 5  # the counts reach the metrics once a second
    while metric(other, "s3tier_peer_requests_total", outcome="hit") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert metric(other, "s3tier_cache_results_total", result="hit_peer") == 1
    assert metric(other, "s3tier_fleet_members") == 3
    assert metric(other, "s3tier_peer_circuits_open") == 0
    assert metric(other, "s3tier_peer_request_duration_seconds_count") == 1
    stats = requests.get(f"{other.url}/_s3tier/stats", timeout=10).json()
    assert stats["served_bytes"]["peer"] == len(data)
    assert stats["upstream_bytes_saved"] == 2 * len(data)  # one from the owner, one from RAM
    # The owner counts the member's request apart from its clients' answers.
    assert metric(home, "s3tier_peer_served_total", result="hit_ram") == 1
    assert metric(home, "s3tier_cache_results_total", result="hit_ram") == 0


@pytest.mark.parametrize("fleet_of", [True, False], ids=["fleet", "independent"])
def test_the_fleets_disks_hold_a_working_set_no_single_node_could(
    tmp_path: Path, direct: Any, bucket: str, shim: UpstreamShim, fleet_of: bool
) -> None:
    # 150 MiB of 2 MiB objects (too large for these nodes' RAM) over three 64 MiB disks, each
    # read twice through a node picked at random, as a Service would. A fleet's nodes keep only
    # the blocks they own, about 50 MiB each, so the second pass is served whole by the fleet;
    # independent nodes that each keep what they read serve it only where it was read before.
    objects = {f"ws/{i:03d}": os.urandom(2 * MiB) for i in range(75)}
    for key, body in objects.items():
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    flags = ("--disk-bytes", "64MiB", "--ram-bytes", "4MiB")
    pick = random.Random(13)
    with started_fleet(
        tmp_path, shim, *flags, views=None if fleet_of else [[0], [1], [2]]
    ) as nodes:
        for round_ in range(2):
            if round_ == 1:
                shim.clear()
            for key, body in objects.items():
                got = requests.get(f"{pick.choice(nodes).url}/{bucket}/{key}", timeout=60)
                assert got.content == body
        second = sum(r.body_bytes for r in shim.matching("GET", f"/{bucket}/ws/"))
    served = 1 - second / (150 * MiB)
    if fleet_of:
        assert served >= 0.95, f"{served:.1%} of the second pass from the fleet"
    else:
        assert served < 0.45, f"{served:.1%} of the second pass from independent nodes' caches"


def test_members_that_disagree_about_the_fleet_only_fetch_twice_never_serve_wrong_bytes(
    tmp_path: Path, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(12 * MiB + 5)
    direct.put_object(Bucket=bucket, Key="split", Body=data)
    # Node 1 has not heard of node 2: it owns some of node 2's blocks itself.
    with started_fleet(tmp_path, shim, views=[[0, 1, 2], [0, 1], [0, 1, 2]]) as nodes:
        for _ in range(2):
            for node in nodes:
                got = requests.get(f"{node.url}/{bucket}/split", timeout=60)
                assert (got.status_code, got.content) == (200, data)
    fetched = upstream_body_bytes(shim, bucket, "split")
    assert len(data) <= fetched < 2 * len(data)  # some blocks twice, none more


def test_a_write_through_one_node_is_seen_at_once_through_every_other(
    fleet: list[S3TierServer], direct: Any, bucket: str
) -> None:
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB + 7)
    direct.put_object(Bucket=bucket, Key="changed", Body=old)
    for node in fleet:  # cached everywhere: metadata on each node, blocks on their owners
        assert requests.get(f"{node.url}/{bucket}/changed", timeout=60).content == old
    assert requests.put(f"{fleet[0].url}/{bucket}/changed", data=new, timeout=60).ok
    for node in fleet:
        assert requests.get(f"{node.url}/{bucket}/changed", timeout=60).content == new
    assert requests.delete(f"{fleet[1].url}/{bucket}/changed", timeout=60).status_code == 204
    for node in fleet:
        assert requests.get(f"{node.url}/{bucket}/changed", timeout=60).status_code == 404


def test_a_member_killed_leaves_its_blocks_to_the_upstream_and_nothing_fails(
    fleet: list[S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(8 * MiB)
    direct.put_object(Bucket=bucket, Key="orphaned", Body=data)
    fleet[2].stop(9)  # SIGKILL: it cannot say goodbye
    started = time.monotonic()
    for node in fleet[:2]:
        assert requests.get(f"{node.url}/{bucket}/orphaned", timeout=60).content == data
    assert time.monotonic() - started < 30


def test_an_owner_killed_in_the_middle_of_a_herd_leaves_no_client_with_wrong_bytes(
    fleet: list[S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(16 * MiB)
    direct.put_object(Bucket=bucket, Key="mid-herd", Body=data)
    digest = hashlib.sha256(data).hexdigest()

    def read(i: int) -> str:
        """'whole' for the right bytes, 'error' for a clean failure; anything else is wrong."""
        try:
            got = requests.get(f"{fleet[i % 2].url}/{bucket}/mid-herd", timeout=60)
        except requests.exceptions.RequestException:
            return "error"  # a connection closed short of its Content-Length, say
        if got.status_code != 200:
            return "error" if got.status_code >= 500 else f"status {got.status_code}"
        return "whole" if hashlib.sha256(got.content).hexdigest() == digest else "wrong bytes"

    started = time.monotonic()
    with ThreadPoolExecutor(24) as pool:
        herd = [pool.submit(read, i) for i in range(24)]
        time.sleep(0.2)  # the herd is under way, its blocks being fetched from their owners
        fleet[2].stop(9)
        outcomes = [future.result() for future in herd]
    assert set(outcomes) <= {"whole", "error"}, outcomes
    assert time.monotonic() - started < 60  # within the client timeout: nothing hung
    for node in fleet[:2]:  # the dead owner's blocks now come from the upstream
        assert requests.get(f"{node.url}/{bucket}/mid-herd", timeout=60).content == data


def test_an_owner_back_from_a_kill_serves_its_share_from_its_disk_again(
    tmp_path: Path, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    data = os.urandom(9 * MiB)
    direct.put_object(Bucket=bucket, Key="returns", Body=data)
    url = f"/{bucket}/returns"
    # RAM too small for these blocks: every block a node does not own comes from its owner.
    with started_fleet(tmp_path, shim, "--ram-bytes", "1MiB") as nodes:
        assert requests.get(nodes[0].url + url, timeout=60).content == data  # owners fill
        members = [node.url for node in nodes]
        owners = [owner(members, block_id(bucket, "returns", i)) for i in range(9)]
        owned = owners.count(nodes[2].url)
        deadline = time.monotonic() + 10  # its blocks land on its disk just after they are sent
        while len(list(nodes[2].disk_dir.rglob("*.val"))) < owned:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The object's metadata record is written just after its block: give it that moment,
        # or the owner of block 0 comes back without it and fetches that block again.
        time.sleep(1.5)
        nodes[2].stop(9)
        assert requests.get(nodes[1].url + url, timeout=60).content == data  # upstream instead
        nodes[2].start()  # the same disk folder
        time.sleep(OPEN_S + 1)  # the others try it again once its circuit half-opens
        shim.clear()
        assert requests.get(nodes[1].url + url, timeout=60).content == data
        assert requests.get(nodes[0].url + url, timeout=60).content == data
    assert upstream_body_bytes(shim, bucket, "returns") == 0  # all of it from the owners' disks


def test_the_peer_endpoint_refuses_requests_without_the_fleets_signature(
    fleet: list[S3TierServer], direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="secret", Body=b"not for strangers")
    path = f"/_s3tier/peer/{bucket}/secret"
    url = fleet[0].url + path
    assert requests.get(url, timeout=10).status_code == 403
    forged = sign(b"another-secret", "GET", path, time.time())
    refused = requests.get(url, headers={HEADER: forged}, timeout=10)
    assert (refused.status_code, refused.content) == (403, b"")
    signed = sign(SECRET.encode(), "GET", path, time.time())
    assert requests.get(url, headers={HEADER: signed}, timeout=10).content == b"not for strangers"


def test_a_client_without_a_grant_is_refused_by_its_own_node_though_a_peer_holds_the_object(
    tmp_path: Path, direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    reader = ("AKIDFLEETREADER00001", "fleet-reader-secret-00000000000000000001")
    stranger = ("AKIDFLEETSTRANGER001", "fleet-stranger-secret-000000000000000001")
    keys = [
        {"access_key": reader[0], "secret_key": reader[1],
         "grants": [{"bucket": bucket, "prefix": "", "access": "read"}]},
        {"access_key": stranger[0], "secret_key": stranger[1],
         "grants": [{"bucket": "some-other-bucket", "prefix": "", "access": "read"}]},
    ]  # fmt: skip
    credentials = tmp_path / "keys.json"
    credentials.write_text(json.dumps(keys))
    data = os.urandom(200_000)
    direct.put_object(Bucket=bucket, Key="guarded", Body=data)
    token = "fleet-admin-token"
    flags = ("--auth", "sigv4", "--credentials-file", str(credentials), "--admin-token", token)
    with started_fleet(tmp_path, shim, *flags) as nodes:
        members = [node.url for node in nodes]
        home = nodes[members.index(owner(members, block_id(bucket, "guarded", 0)))]
        other = next(node for node in nodes if node is not home)

        def s3(node: S3TierServer, key: tuple[str, str]) -> Any:
            return boto3.client(
                "s3", endpoint_url=node.url, region_name="us-east-1",
                aws_access_key_id=key[0], aws_secret_access_key=key[1],
                config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
            )  # fmt: skip

        assert s3(home, reader).get_object(Bucket=bucket, Key="guarded")["Body"].read() == data
        got = s3(other, reader).get_object(Bucket=bucket, Key="guarded")
        assert got["Body"].read() == data
        assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "HIT-PEER"
        shim.clear()
        for node in (other, home):  # the owner holds it in RAM; neither node hands it over
            with pytest.raises(ClientError) as refused:
                s3(node, stranger).get_object(Bucket=bucket, Key="guarded")
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Only the reader's block request reached the owner as a peer request.
        assert metric(home, "s3tier_peer_served_total", token) == 1
    assert shim.matching(contains="/guarded") == []


def test_a_fleet_without_a_secret_does_not_start(tmp_path: Path, shim: UpstreamShim) -> None:
    node = S3TierServer(tmp_path, shim.url, "--peers", "http://127.0.0.1:1,http://127.0.0.2:1")
    with pytest.raises(RuntimeError):
        node.start()
    assert "--peer-secret" in node.log_text()
