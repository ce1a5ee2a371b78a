"""Shared fixtures: one moto upstream per test session, a recording shim in front of it, and
s3tier servers started per module (or per test, where a test needs its own settings)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import MotoServer, S3TierServer, s3_client
from tests.upstream_shim import UpstreamShim


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shim(moto: MotoServer) -> Iterator[UpstreamShim]:
    proxy = UpstreamShim(moto.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def direct(moto: MotoServer) -> Any:
    """A boto3 client talking to the upstream itself, bypassing s3tier."""
    return s3_client(moto.url)


@pytest.fixture
def bucket(direct: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    direct.create_bucket(Bucket=name)
    return name


@pytest.fixture
def start_s3tier(tmp_path: Path, shim: UpstreamShim) -> Iterator[Callable[..., S3TierServer]]:
    """Start an s3tier process with extra flags, in front of the shim unless told otherwise."""
    started: list[S3TierServer] = []

    def start(
        *flags: str,
        upstream: str | None = "shim",
        workdir: Path | None = None,
        ca: Path | None = None,
    ) -> S3TierServer:
        where = workdir or tmp_path / f"s3tier-{len(started)}"
        where.mkdir(parents=True, exist_ok=True)
        server = S3TierServer(where, shim.url if upstream == "shim" else upstream, *flags, ca=ca)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def proxy_server(
    tmp_path_factory: pytest.TempPathFactory, shim: UpstreamShim
) -> Iterator[S3TierServer]:
    """One default s3tier for a module's tests that need no settings of their own."""
    server = S3TierServer(tmp_path_factory.mktemp("s3tier"), shim.url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(proxy_server: S3TierServer) -> Any:
    return s3_client(proxy_server.url)
