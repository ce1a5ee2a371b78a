"""Smoke: the load-test driver (`loadtests/run.py`, what `make loadtest` runs) starts moto and
s3tier as real processes, seeds them, and runs every workload with locust for a few seconds over
tiny objects, leaving complete reports. Only their presence and shape are asserted, no timings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADTESTS = ROOT / "loadtests"

# Request names each workload must report (a conditional PUT's name ends in ` [200]` or ` [412]`).
EXPECTED_NAMES = {
    "hot_set": ("hot <64KiB",),
    "parquet_ranges": ("footer", "column chunk"),
    "read_mostly": ("read", "put", "put if-none-match", "put if-match"),
    "cold_scan": ("scan <64KiB",),
}
TINY = {
    "LOADTEST_OBJECTS": "20",
    "LOADTEST_MIN_SIZE": "4KiB",
    "LOADTEST_MAX_SIZE": "60KiB",
    "LOADTEST_WRITE_RATIO": "0.5",  # enough writes of each kind in a few seconds
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    results = tmp_path_factory.mktemp("loadtest-results")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    argv = [sys.executable, str(LOADTESTS / "run.py"), "--results-dir", str(results)]
    argv += ["--workloads", ",".join(EXPECTED_NAMES), "--run-time", "3s", "--users", "2"]
    done = subprocess.run(
        argv, env={**env, **TINY}, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    return results, done


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_the_driver_finishes_every_workload_and_writes_a_summary(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    results, done = run
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (results / "summary.md").read_text()
    for workload in EXPECTED_NAMES:
        assert f"| {workload} |" in summary


@pytest.mark.parametrize("workload", EXPECTED_NAMES)
def test_each_workload_leaves_locust_csv_and_html_and_cache_status_rows(
    run: tuple[Path, subprocess.CompletedProcess[str]], workload: str
) -> None:
    results, done = run
    assert (results / f"{workload}.html").stat().st_size > 0, done.stdout
    stats = {row["Name"]: row for row in rows(results / f"{workload}_stats.csv")}
    assert int(stats["Aggregated"]["Request Count"]) > 0
    for expected in EXPECTED_NAMES[workload]:
        matching = [name for name in stats if name == expected or name.startswith(f"{expected} [")]
        # Successes, not requests: moto, the upstream here, can fail a PUT that races another
        # PUT of the same key (a 500 s3tier relays), and the driver lists such failures.
        count = sum(
            int(stats[n]["Request Count"]) - int(stats[n]["Failure Count"]) for n in matching
        )
        assert count > 0, f"no successful {expected!r} requests in {sorted(stats)}"
    cache = rows(results / f"{workload}_cache_status.csv")
    assert cache, "no cache-status rows"
    assert {row["Cache status"] for row in cache} >= {"MISS", "HIT (RAM+DISK)"}


def test_column_chunks_read_from_the_footer_tile_the_file_between_magic_and_footer() -> None:
    sys.path.insert(0, str(LOADTESTS))
    try:
        from parquet_layout import MAGIC, TRAILER_BYTES, Layout, metadata_length, parquet_bytes
    finally:
        sys.path.remove(str(LOADTESTS))
    data = parquet_bytes(random.Random(1), 200_000, columns=5, row_groups=3)
    footer = metadata_length(data) + TRAILER_BYTES
    layout = Layout.from_tail(len(data), data[-footer:])  # given only the tail, as a reader has
    chunks = sorted(layout.chunks, key=lambda chunk: chunk.offset)
    assert (layout.columns, len(chunks)) == (5, 15)
    assert chunks[0].offset == len(MAGIC)
    assert all(a.offset + a.length == b.offset for a, b in itertools.pairwise(chunks))
    assert chunks[-1].offset + chunks[-1].length == len(data) - footer


def test_loadtest_ui_serves_locust_and_the_live_page_then_stops_everything() -> None:
    """`make loadtest-ui`'s driver, bounded by --run-time: both URLs it prints answer while it
    runs, and every process it started is gone once it ends."""
    import requests

    from tests.harness import free_port

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}, **TINY}
    argv = [sys.executable, str(LOADTESTS / "ui.py"), "--workload", "hot_set", "--users", "2",
            "--run-time", "6s", "--web-port", str(free_port())]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert process.stdout is not None
        urls = {}
        for line in process.stdout:
            name, _, rest = line.partition(":")
            if name in ("locust", "s3tier"):
                urls[name] = rest.strip()
            if len(urls) == 2:
                break
        for _ in range(50):  # locust's web UI comes up a moment after it is started
            with contextlib.suppress(requests.RequestException):
                if requests.get(urls["locust"], timeout=2).ok:
                    break
            time.sleep(0.2)
        assert requests.get(urls["locust"], timeout=5).ok
        page = requests.get(urls["s3tier"], timeout=5)
        assert page.ok and "<title>s3tier</title>" in page.text
        rest_of_output = process.stdout.read()
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "stopped: locust, s3tier and moto" in rest_of_output
    for url in urls.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
