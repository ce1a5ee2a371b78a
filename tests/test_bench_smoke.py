"""Smoke: the side-by-side benchmark (`benchmarks/bench.py`, what `make bench` runs) starts moto,
the shims, s3tier and the nginx peer as real processes and runs every workload in quick mode
(tiny objects, one-second loads), leaving a complete table, results and plots. Only their
presence and shape are asserted, never a timing or a target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
PEER = ROOT.parent / "shared" / "peers" / "nginx-proxy-cache.conf"
WORKLOADS = ("W1", "W1s", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10")
# Writes are compared with the upstream itself.
PEERS = {"W8": "direct", "W9": "direct", "W10": "direct"}
APT = "apt-get install -y nginx wrk"


def installed(name: str) -> bool:
    return shutil.which(name) is not None or os.access(f"/usr/sbin/{name}", os.X_OK)


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    return {**env, **extra}


needs_tools = pytest.mark.skipif(
    not (installed("nginx") and installed("wrk")),
    reason=f"nginx and wrk are not installed (`{APT}`; .ci/run and `make bench` install them)",
)
needs_peer = pytest.mark.skipif(
    not PEER.is_file(), reason=f"the nginx peer configuration is not at {PEER}"
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, str(BENCH), "--quick", "--out-dir", str(out)]
    done = subprocess.run(
        argv, env=bench_env(), cwd=ROOT, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out, done.stdout


def results_rows(markdown: str) -> list[list[str]]:
    """The cells of the Results table, one list per row."""
    section = markdown.split("## Results", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| W")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@needs_tools
@needs_peer
def test_the_quick_run_tables_every_workload_with_both_servers(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    rows = results_rows((out / "BENCHMARKS.md").read_text(encoding="utf-8"))
    assert {row[0] for row in rows} == set(WORKLOADS)
    for row in rows:
        workload, s3tier, nginx, verdict = row[0], row[3], row[4], row[7]
        assert s3tier != "—" and nginx != "—", f"{workload} row lacks a server: {row}"
        assert verdict in ("**met**", "**not met**", "(no target)"), row


@needs_tools
@needs_peer
def test_the_quick_run_leaves_raw_results_for_both_servers_and_the_plots(
    quick_run: tuple[Path, str],
) -> None:
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["workloads"]) == set(WORKLOADS)
    for workload, data in results["workloads"].items():
        assert "error" not in data, f"{workload}: {data.get('error')}"
        for server in ("s3tier", PEERS.get(workload, "nginx")):
            assert data["runs"][server], f"{workload} has no {server} measurement"
    for figure in results["figures"]:
        peer = PEERS.get(figure["workload"], "nginx")
        assert figure["s3tier"] is not None and figure[peer] is not None, figure
    for machine_key in ("nproc", "cpu_model", "memory_gib"):
        assert results["meta"]["machine"][machine_key]
    for plot in ("ratios.png", "figures.png", "latency.png"):
        assert (out / plot).stat().st_size > 0


@needs_tools
@needs_peer
def test_the_markdown_states_the_command_machine_and_versions(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    text = (out / "BENCHMARKS.md").read_text(encoding="utf-8")
    for needle in ("Command: `", "Machine: ", "nginx/", "wrk ", "Quick mode"):
        assert needle in text


def test_a_missing_peer_configuration_stops_the_bench_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    argv = [sys.executable, str(BENCH), "--quick", "--out-dir", str(tmp_path)]
    done = subprocess.run(
        argv,
        env=bench_env(BENCH_PEER_CONFIG=str(missing)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "peer configuration is missing" in done.stderr
    assert str(missing) in done.stderr
