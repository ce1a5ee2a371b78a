"""Specification of proxy.cli: flags reach Settings, bad settings exit 2, good ones reach serve."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import proxy
from config.settings import SETTINGS, Freshness, FreshnessPolicy, Settings
from proxy.cli import main

ENV = {"HOME": "/home/tester"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Replace proxy.server with a module whose serve() records the Settings it receives."""
    received: list[Settings] = []
    fake = types.ModuleType("proxy.server")
    fake.serve = received.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "proxy.server", fake)
    # `from proxy import server` prefers the package attribute if a real import already set it.
    monkeypatch.setattr(proxy, "server", fake, raising=False)
    return received


def test_a_bad_size_exits_2_and_names_the_setting(
    served: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--ram-bytes", "12XB"], environ=ENV) == 2
    assert capsys.readouterr().err == (
        "s3tier: error: --ram-bytes / S3TIER_RAM_BYTES: '12XB' is not a size "
        "(use e.g. 64MiB, 10GiB)\n"
    )
    assert served == []


def test_a_bad_env_value_exits_2_and_names_the_variable(
    served: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve"], environ={**ENV, "S3TIER_WORKERS": "0"}) == 2
    assert "S3TIER_WORKERS" in capsys.readouterr().err
    assert served == []


def test_serve_receives_the_settings_from_flags(served: list[Settings]) -> None:
    argv = [
        "serve", "--host", "0.0.0.0", "--port", "0", "--upstream", "http://minio:9000/",
        "--ram-bytes", "1GiB", "--ram-max-object", "32MiB", "--block-size", "4MiB",
        "--freshness", "ttl:0.5", "--serve-stale-on-error", "--workers", "2",
        "--upstream-connect-timeout", "1.5", "--log-level", "debug",
    ]  # fmt: skip
    assert main(argv, environ=ENV) == 0
    [settings] = served
    assert settings == Settings(
        host="0.0.0.0",
        port=0,
        upstream="http://minio:9000",
        ram_bytes=2**30,
        ram_max_object_bytes=32 * 2**20,
        disk_dir="/home/tester/.cache/s3tier",
        block_size_bytes=4 * 2**20,
        freshness=FreshnessPolicy(Freshness("ttl", 0.5)),
        serve_stale_on_error=True,
        workers=2,
        upstream_connect_timeout_s=1.5,
        log_level="debug",
        auth="sigv4",  # not bound to loopback, so signatures are checked by default
    )


def test_absent_flags_do_not_mask_the_environment(served: list[Settings]) -> None:
    assert main(["serve"], environ={**ENV, "S3TIER_PORT": "9000"}) == 0
    assert served[0].port == 9000


def test_a_flag_beats_the_environment(served: list[Settings]) -> None:
    assert main(["serve", "--port", "9001"], environ={**ENV, "S3TIER_PORT": "9000"}) == 0
    assert served[0].port == 9001


def test_no_serve_stale_on_error_overrides_the_environment(served: list[Settings]) -> None:
    env = {**ENV, "S3TIER_SERVE_STALE_ON_ERROR": "yes"}
    assert main(["serve", "--no-serve-stale-on-error"], environ=env) == 0
    assert served[0].serve_stale_on_error is False


def test_config_flag_reads_the_yaml_file(served: list[Settings], tmp_path: Path) -> None:
    path = tmp_path / "s3tier.yaml"
    path.write_text("port: 7000\nregion: eu-west-1\n", encoding="utf-8")
    assert main(["serve", "--config", str(path), "--port", "7001"], environ=ENV) == 0
    assert (served[0].port, served[0].region) == (7001, "eu-west-1")


def test_s3tier_config_names_the_yaml_file_without_the_flag(
    served: list[Settings], tmp_path: Path
) -> None:
    path = tmp_path / "s3tier.yaml"
    path.write_text("port: 7000\n", encoding="utf-8")
    assert main(["serve"], environ={**ENV, "S3TIER_CONFIG": str(path)}) == 0
    assert served[0].port == 7000


def test_the_example_config_starts_the_server(served: list[Settings]) -> None:
    assert main(["serve", "--config", str(REPO / "config" / "example.yaml")], environ=ENV) == 0
    assert len(served) == 1


def test_help_lists_every_setting_with_its_env_var_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--help"], environ=ENV) == 0
    # argparse wraps lines; join them so a flag's help can be checked as one string.
    text = " ".join(capsys.readouterr().out.split())
    for setting in SETTINGS:
        assert setting.flag in text
        assert f"env {setting.env_var}; default {setting.default_text()}" in text
    assert "[env S3TIER_CONFIG]" in text


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no command"),
        pytest.param(["bake"], id="an unknown command"),
        pytest.param(["serve", "--ram"], id="an unknown flag"),
        pytest.param(["serve", "--port"], id="a flag without its value"),
    ],
)
def test_usage_errors_exit_2(
    served: list[Settings], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv, environ=ENV) == 2
    assert "s3tier" in capsys.readouterr().err
    assert served == []


def test_python_dash_m_proxy_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--ram-max-object" in result.stdout
