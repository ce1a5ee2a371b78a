"""HTTPS on the client port and between fleet members, with a CA made in the test: real boto3,
the aws cli and a keep-alive connection across a certificate rotation (proxy/tls.py)."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from tests.certs import Authority, replace_file, unrelated_key
from tests.harness import CREDENTIALS, VENV_BIN, S3TierServer
from tests.test_fleet_e2e import HOSTS, SECRET, port_free_on_every_host, upstream_body_bytes
from tests.upstream_shim import UpstreamShim

MiB = 1 << 20


class Tls:
    """The test's CA, and the pair of files the server is started with."""

    def __init__(self, folder: Path) -> None:
        self.ca = Authority.create(folder)
        self.cert, self.key = folder / "tls.crt", folder / "tls.key"
        self.serial = self.ca.issue(self.cert, self.key)

    @property
    def flags(self) -> tuple[str, ...]:
        return ("--tls-cert", str(self.cert), "--tls-key", str(self.key))

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.bundle))


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return Tls(tmp_path)


@pytest.fixture
def start_https(start_s3tier: Callable[..., S3TierServer], tls: Tls) -> Callable[..., S3TierServer]:
    """`start_s3tier` serving HTTPS with the test's pair."""
    return lambda *flags: start_s3tier(*tls.flags, *flags, ca=tls.ca.bundle)


def served_serial(server: S3TierServer, tls: Tls) -> int:
    """The serial number of the certificate a new connection is given."""
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=tls.context())
    try:
        connection.request("GET", "/_s3tier/healthz")
        connection.getresponse().read()
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
    finally:
        connection.close()
    assert der is not None
    return _serial(der)


def _serial(der: bytes) -> int:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_boto3_and_the_aws_cli_work_unchanged_over_https_and_cleartext_is_refused(
    start_https: Callable[..., S3TierServer], tls: Tls, bucket: str, tmp_path: Path
) -> None:
    server = start_https()
    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1", verify=str(tls.ca.bundle),
        config=Config(s3={"addressing_style": "path"}), **_keys(),
    )  # fmt: skip
    body = os.urandom(3 * MiB + 17)
    s3.put_object(Bucket=bucket, Key="over-tls", Body=body)
    assert s3.get_object(Bucket=bucket, Key="over-tls")["Body"].read() == body
    ranged = s3.get_object(Bucket=bucket, Key="over-tls", Range="bytes=1048570-2097160")
    assert ranged["Body"].read() == body[1048570:2097161]

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", **CREDENTIALS,
    }  # fmt: skip
    out = tmp_path / "copied"
    done = subprocess.run(
        [str(VENV_BIN / "aws"), "--endpoint-url", server.url, "--ca-bundle", str(tls.ca.bundle),
         "s3", "cp", f"s3://{bucket}/over-tls", str(out)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == body
    # Without the test's CA, the client refuses the server; in cleartext, the server refuses.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/{bucket}/over-tls", timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/{bucket}/over-tls", timeout=10)


def test_sigterm_with_idle_https_clients_still_connected_stops_at_once(
    start_https: Callable[..., S3TierServer], tls: Tls, direct: Any, bucket: str
) -> None:
    # A pooled client keeps its connection open and never answers a TLS close: the server
    # must not wait for it (it waited the loop's 30 s TLS shutdown timeout).
    server = start_https()
    direct.put_object(Bucket=bucket, Key="idle", Body=b"x" * 1000)
    with requests.Session() as session:
        for _ in range(3):
            answer = session.get(f"{server.url}/{bucket}/idle", verify=str(tls.ca.bundle))
            assert answer.status_code == 200
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 5
        # uvicorn re-raises the signal once it has shut down cleanly
        assert server.proc is not None and server.proc.returncode == -signal.SIGTERM
        assert "Finished server process" in server.log_text()


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_a_rotated_certificate_reaches_new_connections_while_an_open_one_keeps_going(
    start_https: Callable[..., S3TierServer], tls: Tls, direct: Any, bucket: str, workers: int
) -> None:
    server = start_https("--workers", str(workers))
    direct.put_object(Bucket=bucket, Key="k", Body=b"kept")
    kept = http.client.HTTPSConnection("127.0.0.1", server.port, context=tls.context())

    def get() -> bytes:
        kept.request("GET", f"/{bucket}/k")
        return kept.getresponse().read()

    try:
        assert get() == b"kept"
        assert kept.sock is not None
        sock = kept.sock
        first = _serial(sock.getpeercert(binary_form=True) or b"")
        assert first == tls.serial
        rotated = tls.ca.issue(tls.cert, tls.key)  # as cert-manager renews a Secret
        # Every worker takes the new pair; a handful of new connections reach each of them.
        wait_for(lambda: all(served_serial(server, tls) == rotated for _ in range(2 * workers)))
        assert get() == b"kept"
        assert kept.sock is sock  # the same connection, still on its first certificate
        assert _serial(sock.getpeercert(binary_form=True) or b"") == first
    finally:
        kept.close()


def test_a_pair_that_does_not_load_keeps_the_previous_one_and_sighup_reloads(
    start_https: Callable[..., S3TierServer], tls: Tls
) -> None:
    server = start_https()
    replace_file(tls.key, unrelated_key())  # a key that does not match the certificate
    wait_for(lambda: "keeping the previous one" in server.log_text())
    assert served_serial(server, tls) == tls.serial  # still served, with the previous pair
    fixed = tls.ca.issue(tls.cert, tls.key)
    wait_for(lambda: served_serial(server, tls) == fixed)
    reloads = server.log_text().count("TLS certificate reloaded")
    os.kill(server.pid, signal.SIGHUP)  # reloads even when nothing changed, and stops nothing
    wait_for(lambda: server.log_text().count("TLS certificate reloaded") > reloads)
    assert server.proc is not None and server.proc.poll() is None
    assert served_serial(server, tls) == fixed


def test_disk_hits_over_https_are_sent_through_tls_whole(
    start_https: Callable[..., S3TierServer], tls: Tls, direct: Any, bucket: str
) -> None:
    # Objects larger than RAM takes are sent from the disk tier's files; on plain HTTP by
    # sendfile beneath the server, which over TLS would put cleartext on the wire.
    server = start_https("--ram-max-object", "1MiB")
    body = os.urandom(5 * MiB + 3)
    direct.put_object(Bucket=bucket, Key="big", Body=body)
    verify = str(tls.ca.bundle)
    assert requests.get(f"{server.url}/{bucket}/big", verify=verify, timeout=60).content == body
    time.sleep(0.5)  # its blocks reach the disk just after they are sent
    got = requests.get(f"{server.url}/{bucket}/big", verify=verify, timeout=60)
    assert (got.headers["x-cache-status"], got.content) == ("HIT-DISK", body)


def test_a_pair_that_does_not_load_stops_start_up_with_its_reason(
    tmp_path: Path, shim: UpstreamShim, tls: Tls
) -> None:
    replace_file(tls.key, unrelated_key())
    server = S3TierServer(tmp_path, shim.url, *tls.flags, ca=tls.ca.bundle)
    with pytest.raises(RuntimeError):
        server.start()
    assert "--tls-cert/--tls-key" in server.log_text()
    alone = S3TierServer(tmp_path, shim.url, "--tls-cert", str(tls.cert))
    with pytest.raises(RuntimeError):
        alone.start()
    assert "go together" in alone.log_text()


def test_a_fleet_speaks_https_between_members_verified_by_the_ca(
    tmp_path: Path, shim: UpstreamShim, tls: Tls, direct: Any, bucket: str
) -> None:
    port = port_free_on_every_host()
    members = ",".join(f"https://{host}:{port}" for host in HOSTS)
    flags = (*tls.flags, "--tls-ca", str(tls.ca.bundle), "--peers", members,
             "--peer-secret", SECRET, "--freshness", "immutable")  # fmt: skip
    nodes = []
    for i, host in enumerate(HOSTS):
        (tmp_path / f"node-{i}").mkdir()
        where = tmp_path / f"node-{i}"
        nodes.append(S3TierServer(where, shim.url, *flags, host=host, port=port, ca=tls.ca.bundle))
    body = os.urandom(6 * MiB + 5)
    direct.put_object(Bucket=bucket, Key="fleet", Body=body)
    try:
        for node in nodes:
            node.start()
        statuses = set()
        for node in nodes:
            got = requests.get(f"{node.url}/{bucket}/fleet", verify=str(tls.ca.bundle), timeout=60)
            assert got.content == body
            statuses.add(got.headers["x-cache-status"])
    finally:
        for node in nodes:
            node.stop()
    # Each block came from the upstream once: the members asked each other, over TLS.
    assert upstream_body_bytes(shim, bucket, "fleet") == len(body)
    assert "HIT-PEER" in statuses
    assert all("skipped for" not in node.log_text() for node in nodes)
