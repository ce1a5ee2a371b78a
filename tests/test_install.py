"""Specification of what an install needs: the embedded S3 server is an extra, and S3 checksums
run on awscrt.

Without the `s3tier[embedded]` extra (the container image), `serve` with no --upstream stops at
once with what to do, and with an upstream it needs no moto at all. A fresh virtualenv per test
would take minutes, so moto's absence is simulated: a directory put first on PYTHONPATH holds a
`moto` package whose import fails, just as a missing one would.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

from proxy import checksums
from tests.harness import CREDENTIALS, VENV_BIN, S3TierServer, free_port, s3_client
from tests.upstream_shim import UpstreamShim


@pytest.fixture
def without_moto(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import moto` fails as it does where moto is not installed."""
    shadow = tmp_path / "no-moto" / "moto"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'moto\'", name="moto")\n', encoding="utf-8"
    )
    path = [str(shadow.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, **CREDENTIALS, "PYTHONPATH": os.pathsep.join(path)}


def test_the_moto_shadow_really_hides_moto(without_moto: dict[str, str]) -> None:
    probe = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "import moto.server"],
        env=without_moto, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert probe.returncode == 1 and "No module named 'moto'" in probe.stderr


def test_serve_without_upstream_or_the_embedded_extra_stops_at_once_saying_what_to_do(
    without_moto: dict[str, str], tmp_path: Path
) -> None:
    argv = [str(VENV_BIN / "s3tier"), "serve", "--port", str(free_port()),
            "--disk-dir", str(tmp_path / "disk")]  # fmt: skip
    result = subprocess.run(
        argv, env=without_moto, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    error = result.stderr
    assert error.startswith("s3tier: error: --upstream / S3TIER_UPSTREAM: not set, and the ")
    assert "--upstream https://" in error and "pip install 's3tier[embedded]'" in error
    assert "Traceback" not in error + result.stdout
    assert not (tmp_path / "disk").exists(), "it stopped before opening the disk tier"


def test_serve_with_an_upstream_needs_no_moto(
    without_moto: dict[str, str], shim: UpstreamShim, bucket: str, tmp_path: Path
) -> None:
    server = S3TierServer(tmp_path, shim.url)
    server.env = {**server.env, "PYTHONPATH": without_moto["PYTHONPATH"]}
    try:
        server.start()
        s3: Any = s3_client(server.url)
        s3.put_object(Bucket=bucket, Key="k", Body=b"no moto here")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"no moto here"
    finally:
        server.stop()


def test_s3_checksums_use_awscrt_where_it_is_installed() -> None:
    # awscrt comes with botocore[crt], a runtime dependency; the pure-Python CRCs are a fallback.
    assert importlib.util.find_spec("awscrt") is not None
    assert checksums._FACTORIES["crc32c"] is CrtCrc32cChecksum
    assert checksums._FACTORIES["crc64nvme"] is CrtCrc64NvmeChecksum
