"""Real clients, unchanged, against s3tier: the aws cli, pyarrow's S3 filesystem, virtual-hosted
addressing from boto3 and from a bare HTTP client, and the embedded upstream of a first run.

Each client is pointed at s3tier and nothing else; what it stored or read is checked against the
upstream itself (`direct`), byte for byte.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from tests.harness import CREDENTIALS, VENV_BIN, S3TierServer, s3_client
from tests.upstream_shim import UpstreamShim

MiB = 1 << 20
AwsCli = Callable[..., subprocess.CompletedProcess[str]]


def cache_status(response: dict[str, Any]) -> str | None:
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-cache-status")


def upstream_gets(shim: UpstreamShim, bucket: str, key: str) -> int:
    return sum(1 for r in shim.matching("GET") if r.path.partition("?")[0] == f"/{bucket}/{key}")


# -- the aws cli --------------------------------------------------------------------------------


@pytest.fixture
def aws(proxy_server: S3TierServer, tmp_path: Path) -> AwsCli:
    """`aws --endpoint-url <s3tier> ...` with a clean HOME, so no user config takes part."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **CREDENTIALS,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(VENV_BIN / "aws"), "--endpoint-url", proxy_server.url, *args]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    return run


def test_aws_s3_mb_creates_the_bucket_upstream(aws: AwsCli, direct: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    done = aws("s3", "mb", f"s3://{name}")
    assert done.stdout.strip() == f"make_bucket: {name}"
    assert direct.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_aws_s3_cp_uploads_a_12_mib_file_byte_identical(
    aws: AwsCli, direct: Any, shim: UpstreamShim, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB)
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    shim.clear()
    aws("s3", "cp", str(local), f"s3://{bucket}/dir/up.bin")
    assert direct.get_object(Bucket=bucket, Key="dir/up.bin")["Body"].read() == data
    # 12 MiB is over the cli's 8 MiB multipart threshold: the parts went through s3tier.
    parts = [r for r in shim.matching("PUT", f"/{bucket}/dir/up.bin") if "partNumber=" in r.path]
    assert len(parts) == 2


def test_aws_s3_cp_downloads_byte_identical(
    aws: AwsCli, direct: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB)
    direct.put_object(Bucket=bucket, Key="dir/down.bin", Body=data)
    local = tmp_path / "down.bin"
    aws("s3", "cp", f"s3://{bucket}/dir/down.bin", str(local))
    assert local.read_bytes() == data


def test_aws_s3_ls_lists_what_the_upstream_holds(aws: AwsCli, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="top.txt", Body=b"12345")
    direct.put_object(Bucket=bucket, Key="sub dir/inner.txt", Body=b"x")
    lines = aws("s3", "ls", f"s3://{bucket}/").stdout.splitlines()
    # "                           PRE sub dir/" and "2026-11-26 03:24:40          5 top.txt"
    assert [line.strip() for line in lines if "PRE" in line] == ["PRE sub dir/"]
    files = [line.split(None, 2)[2].split() for line in lines if "PRE" not in line]
    assert files == [["5", "top.txt"]]


def test_aws_s3_rm_deletes_upstream_and_the_cached_copy(
    aws: AwsCli, s3: Any, direct: Any, bucket: str
) -> None:
    direct.put_object(Bucket=bucket, Key="rm.txt", Body=b"cached, then removed")
    for _ in range(2):  # the second read is from the cache
        assert s3.get_object(Bucket=bucket, Key="rm.txt")["Body"].read() == b"cached, then removed"
    assert (
        aws("s3", "rm", f"s3://{bucket}/rm.txt").stdout.strip() == f"delete: s3://{bucket}/rm.txt"
    )
    for client in (direct, s3):
        with pytest.raises(ClientError) as info:
            client.get_object(Bucket=bucket, Key="rm.txt")
        assert info.value.response["Error"]["Code"] == "NoSuchKey"


def test_aws_s3api_get_object_with_a_range_returns_exactly_those_bytes(
    aws: AwsCli, direct: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    direct.put_object(Bucket=bucket, Key="ranged", Body=data)
    out = tmp_path / "first100"
    done = aws(
        "s3api", "get-object", "--bucket", bucket, "--key", "ranged", "--range", "bytes=0-99",
        str(out),
    )  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["ContentLength"] == 100
    assert answer["ContentRange"] == f"bytes 0-99/{len(data)}"
    assert out.read_bytes() == data[:100]


# -- pyarrow ------------------------------------------------------------------------------------


@pytest.fixture
def arrow_fs(proxy_server: S3TierServer) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{proxy_server.port}",
        scheme="http",
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )


def sample_table() -> pa.Table:
    return pa.table(
        {"n": list(range(5000)), "s": [f"row {i} ✓" for i in range(5000)], "f": [0.5] * 5000}
    )


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def test_pyarrow_writes_a_parquet_file_through_the_proxy_byte_identical(
    arrow_fs: pafs.S3FileSystem, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    # Some pyarrow versions send the body as Content-Encoding: aws-chunked (chunk framing and a
    # checksum trailer inside the body, x-amz-content-sha256: STREAMING-...) even over http. The
    # upstream can only unwrap it if the framing headers reach it with the body unchanged.
    table = sample_table()
    shim.clear()
    pq.write_table(table, f"{bucket}/data/t.parquet", filesystem=arrow_fs)
    stored = direct.get_object(Bucket=bucket, Key="data/t.parquet")["Body"].read()
    assert stored[:4] == stored[-4:] == b"PAR1"
    assert stored == parquet_bytes(table)
    assert shim.matching("PUT", f"/{bucket}/data/t.parquet")


def test_pyarrow_reads_back_what_it_wrote_and_the_second_read_is_cached(
    arrow_fs: pafs.S3FileSystem, shim: UpstreamShim, bucket: str
) -> None:
    table = sample_table()
    path = f"{bucket}/data/t.parquet"
    pq.write_table(table, path, filesystem=arrow_fs)
    assert pq.read_table(path, filesystem=arrow_fs).equals(table)
    gets = upstream_gets(shim, bucket, "data/t.parquet")
    assert gets > 0
    assert pq.read_table(path, filesystem=arrow_fs).equals(table)
    assert upstream_gets(shim, bucket, "data/t.parquet") == gets


def test_pyarrow_reads_a_parquet_file_stored_upstream_and_the_second_read_is_cached(
    arrow_fs: pafs.S3FileSystem, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    table = sample_table()
    direct.put_object(Bucket=bucket, Key="data/up.parquet", Body=parquet_bytes(table))
    path = f"{bucket}/data/up.parquet"
    assert pq.read_table(path, filesystem=arrow_fs).equals(table)
    gets = upstream_gets(shim, bucket, "data/up.parquet")
    assert gets > 0
    assert pq.read_table(path, filesystem=arrow_fs).equals(table)
    assert upstream_gets(shim, bucket, "data/up.parquet") == gets


# -- virtual-hosted addressing ------------------------------------------------------------------


def raw_request(
    server: S3TierServer, method: str, path: str, host: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # s3tier runs with --auth none, so an unsigned request is accepted.
        connection.request(method, path, body=body, headers={"Host": host})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_a_virtual_hosted_get_with_a_bare_host_header_is_served_and_cached(
    proxy_server: S3TierServer, direct: Any, shim: UpstreamShim, bucket: str
) -> None:
    host = f"{bucket}.localhost:{proxy_server.port}"  # the default base domain is localhost
    direct.put_object(Bucket=bucket, Key="v/k.txt", Body=b"virtually hosted")
    status, headers, body = raw_request(proxy_server, "GET", "/v/k.txt", host)
    assert (status, headers["x-cache-status"], body) == (200, "MISS", b"virtually hosted")
    status, headers, body = raw_request(proxy_server, "GET", "/v/k.txt", host)
    assert (status, headers["x-cache-status"], body) == (200, "HIT-RAM", b"virtually hosted")
    # Upstream, the request is path-style, for the same bucket and key.
    assert upstream_gets(shim, bucket, "v/k.txt") == 1


def test_a_virtual_hosted_listing_and_put_are_forwarded_for_the_hosts_bucket(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    host = f"{bucket}.localhost:{proxy_server.port}"
    status, _, _ = raw_request(proxy_server, "PUT", "/put/here.txt", host, b"put virtually")
    assert status == 200
    assert direct.get_object(Bucket=bucket, Key="put/here.txt")["Body"].read() == b"put virtually"
    status, _, body = raw_request(proxy_server, "GET", "/?list-type=2", host)
    assert status == 200
    assert b"<Key>put/here.txt</Key>" in body


@pytest.fixture
def localhost_subdomains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve `<name>.localhost` to loopback in this test process, as RFC 6761 §6.3 says it
    is; this machine's resolver (glibc, /etc/hosts) knows only `localhost` itself. Only name
    resolution changes: boto3 still builds the virtual-hosted URL and Host header itself."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("localhost_subdomains")
def test_boto3_virtual_addressing_reads_and_writes_through_the_proxy(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    client = s3_client(f"http://localhost:{proxy_server.port}", s3={"addressing_style": "virtual"})
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    client.put_object(Bucket=bucket, Key="vh/put.txt", Body=b"from boto3, virtually")
    assert direct.get_object(Bucket=bucket, Key="vh/put.txt")["Body"].read() == (
        b"from boto3, virtually"
    )
    direct.put_object(Bucket=bucket, Key="vh/get.txt", Body=b"read by boto3, virtually")
    cold = client.get_object(Bucket=bucket, Key="vh/get.txt")
    cached = client.get_object(Bucket=bucket, Key="vh/get.txt")
    assert cold["Body"].read() == cached["Body"].read() == b"read by boto3, virtually"
    assert (cache_status(cold), cache_status(cached)) == ("MISS", "HIT-RAM")
    origin = f"http://{bucket}.localhost:{proxy_server.port}"
    assert sent == [f"{origin}/vh/put.txt", f"{origin}/vh/get.txt", f"{origin}/vh/get.txt"]


# -- the embedded upstream ----------------------------------------------------------------------


def test_with_no_upstream_s3tier_serves_from_its_embedded_s3_server(
    start_s3tier: Callable[..., S3TierServer], direct: Any, shim: UpstreamShim
) -> None:
    server = start_s3tier(upstream=None)
    client = s3_client(server.url)
    name = f"t-{uuid.uuid4().hex[:12]}"
    shim.clear()
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="first/run.txt", Body=b"works out of the box")
    first = client.get_object(Bucket=name, Key="first/run.txt")
    second = client.get_object(Bucket=name, Key="first/run.txt")
    assert first["Body"].read() == second["Body"].read() == b"works out of the box"
    # The first read may already hit: a PUT through s3tier can fill the cache as it passes.
    assert cache_status(second) == "HIT-RAM"
    assert "embedded S3 server" in server.log_text()
    # It is its own store: neither the test session's upstream nor the shim saw any of it.
    assert shim.requests == []
    with pytest.raises(ClientError):
        direct.head_bucket(Bucket=name)
