"""The soak of `make soak` (loadtests/soak.py), for 20 seconds in `make test`: mixed reads and
writes against tiers far smaller than the data, every body verified, resources flat, the disk
folder within its limit (issue 7, §2.11). One run per module; each invariant is its own test,
so one that breaks does not hide the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DURATION_S = 20


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results = tmp_path_factory.mktemp("soak")
    argv = [sys.executable, str(ROOT / "loadtests" / "soak.py"), "--duration", str(DURATION_S)]
    argv += ["--objects", "100", "--users", "6", "--results-dir", str(results)]
    argv += ["--summary", str(results / "summary.md")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAK_")}
    done = subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=DURATION_S + 180
    )
    report = results / "soak.json"
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(report.read_text())
    outcome["summary"] = (results / "summary.md").read_text()
    outcome["exit"] = done.returncode
    return outcome


def verdict(soak: dict[str, Any], name: str) -> Any:
    return soak["verdicts"][name]


def test_the_soak_runs_to_the_end_with_s3tier_alive(soak: dict[str, Any]) -> None:
    assert verdict(soak, "ran_to_the_end"), soak["summary"]
    assert verdict(soak, "requests_made"), soak["summary"]
    assert verdict(soak, "no_tracebacks_in_log"), soak["summary"]


def test_the_soak_sees_zero_unexpected_errors_and_every_body_verifies(
    soak: dict[str, Any],
) -> None:
    assert verdict(soak, "zero_unexpected_errors"), soak["summary"]


def test_the_soak_keeps_both_tiers_evicting(soak: dict[str, Any]) -> None:
    assert verdict(soak, "evicted_constantly"), soak["summary"]


@pytest.mark.parametrize("resource", ["rss_flat_within_10pct", "open_fds_flat_within_10pct"])
def test_the_soak_keeps_rss_and_open_files_flat(soak: dict[str, Any], resource: str) -> None:
    assert verdict(soak, resource)["ok"], soak["summary"]


def test_the_soak_never_lets_the_disk_folder_exceed_disk_bytes(soak: dict[str, Any]) -> None:
    assert verdict(soak, "disk_never_above_limit")["ok"], soak["summary"]


def test_the_soak_exit_status_says_whether_every_invariant_held(soak: dict[str, Any]) -> None:
    assert (soak["exit"] == 0) == soak["ok"]
