"""Run the load tests end to end and bounded in time: a moto upstream and s3tier on free
loopback ports, seeded objects, one headless locust run per workload, results on disk.

    python loadtests/run.py                                    # what `make loadtest` runs
    LOADTEST_RUN_TIME=10s LOADTEST_WORKLOADS=hot_set python loadtests/run.py
    python loadtests/run.py --host http://127.0.0.1:8080       # an endpoint already running

Each workload gets a fresh s3tier (empty RAM and disk tiers) in front of the same upstream, so
one workload's cache does not warm the next. Per workload, `<results>/<workload>_stats.csv`
(and locust's other CSVs), `<workload>.html`, `<workload>_cache_status.csv`; over all of them
`summary.md`; process logs in `logs/`. Every process is stopped by PID, on failure too.
Dataset options (`LOADTEST_OBJECTS`, `LOADTEST_MIN_SIZE`, ...) are read from the environment
by the seeder and by locust alike, so they always agree.

The exit status is 0 when every workload ran to the end and left its reports, whether or not
some requests failed: failed requests are findings, counted in the table and listed under it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.harness: the same process handling the e2e tests use

import seed  # noqa: E402
from common import WORKLOADS  # noqa: E402
from summary import Summary  # noqa: E402
from tests.harness import CREDENTIALS, VENV_BIN, MotoServer, S3TierServer  # noqa: E402

# Beyond --run-time, how long locust may take to start, stop its users and write its reports.
LOCUST_GRACE_S = 60


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        default=env("LOADTEST_WORKLOADS", " ".join(WORKLOADS)),
        help=f"space- or comma-separated, of: {', '.join(WORKLOADS)} [env LOADTEST_WORKLOADS]",
    )
    parser.add_argument(
        "--run-time",
        default=env("LOADTEST_RUN_TIME", "30s"),
        help="per workload, e.g. 30s, 2m [env LOADTEST_RUN_TIME]",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=int(env("LOADTEST_USERS", "10")),
        help="simulated clients, all started at once [env LOADTEST_USERS]",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(env("LOADTEST_RESULTS_DIR", str(HERE / "results"))),
        help="where reports go [env LOADTEST_RESULTS_DIR]",
    )
    parser.add_argument(
        "--host",
        default=env("LOADTEST_HOST"),
        help="load this endpoint instead of starting moto and s3tier [env LOADTEST_HOST]",
    )
    parser.add_argument(
        "--seed-endpoint",
        default=env("LOADTEST_SEED_ENDPOINT"),
        help="with --host: where to create the objects; default the host itself (which "
        "warms its cache) [env LOADTEST_SEED_ENDPOINT]",
    )
    parser.add_argument(
        "--s3tier-args",
        default=env("LOADTEST_S3TIER_ARGS", ""),
        help="extra `s3tier serve` flags, e.g. '--ram-bytes 64MiB' [env LOADTEST_S3TIER_ARGS]",
    )
    parser.add_argument(
        "--locust-args",
        default=env("LOADTEST_LOCUST_ARGS", ""),
        help="extra locust flags, e.g. '--zipf-alpha 1.2' [env LOADTEST_LOCUST_ARGS]",
    )
    args = parser.parse_args(argv)
    args.workloads = [name for name in re.split(r"[\s,]+", args.workloads) if name]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    return args


def seconds(timespan: str) -> int:
    """`30s`, `2m`, `1h30m` or `45` (seconds), as locust's --run-time reads them."""
    parts = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?", timespan.strip())
    if parts is None or not any(parts.groups()):
        raise ValueError(f"{timespan!r} is not a run time (use e.g. 30s, 2m, 1h30m)")
    hours, minutes, secs = (int(group or 0) for group in parts.groups())
    return hours * 3600 + minutes * 60 + secs


def locust_argv(args: argparse.Namespace, workload: str, host: str) -> list[str]:
    prefix = args.results_dir / workload
    return [
        str(VENV_BIN / "locust"),
        "-f",
        str(HERE / f"{workload}.py"),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.users),
        "--run-time",
        args.run_time,
        "--host",
        host,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        *shlex.split(args.locust_args),
    ]


def run_bounded(argv: Sequence[str], log_path: Path, timeout_s: float) -> int:
    """Run a command with its output in `log_path`; past `timeout_s`, stop it by PID."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"  {Path(argv[0]).name} overran {timeout_s:.0f}s, stopping PID {process.pid}")
        return -1
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        os.kill(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)


@contextlib.contextmanager
def stopped_at_exit(server: MotoServer | S3TierServer, log_copy: Path) -> Iterator[None]:
    """Stop `server` by PID when the block ends however it ends, and keep its log."""
    try:
        yield
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copyfile(server.log_path, log_copy)


def run_workload(args: argparse.Namespace, workload: str, host: str, logs: Path) -> int:
    for stale in [
        *args.results_dir.glob(f"{workload}_*.csv"),
        args.results_dir / f"{workload}.html",
    ]:
        stale.unlink(missing_ok=True)  # a run that dies early must not leave an older report
    print(f"{workload}: {args.users} users for {args.run_time} against {host}", flush=True)
    started = time.monotonic()
    argv = locust_argv(args, workload, host)
    code = run_bounded(
        argv, logs / f"{workload}.locust.log", seconds(args.run_time) + LOCUST_GRACE_S
    )
    print(f"{workload}: locust exited {code} after {time.monotonic() - started:.1f} s", flush=True)
    return code


def seed_all(args: argparse.Namespace, endpoint: str) -> None:
    for workload in args.workloads:
        dataset, result = seed.seed(seed.parse_args([workload, "--endpoint", endpoint]))
        print(result.describe(dataset), flush=True)


def run_locally(args: argparse.Namespace, logs: Path, scratch: Path) -> dict[str, int]:
    """Start moto, seed it directly, and give each workload a fresh s3tier in front of it."""
    os.environ.update(CREDENTIALS)  # the seeder signs like the tests do; moto accepts any keys
    codes: dict[str, int] = {}
    moto = MotoServer(scratch)
    with stopped_at_exit(moto, logs / "moto.log"):
        moto.start()
        seed_all(args, moto.url)
        for workload in args.workloads:
            workdir = scratch / workload
            workdir.mkdir()
            server = S3TierServer(workdir, moto.url, *shlex.split(args.s3tier_args))
            with stopped_at_exit(server, logs / f"{workload}.s3tier.log"):
                server.start()
                codes[workload] = run_workload(args, workload, server.url, logs)
    return codes


def run_against(args: argparse.Namespace, logs: Path) -> dict[str, int]:
    seed_all(args, args.seed_endpoint or args.host)
    return {workload: run_workload(args, workload, args.host, logs) for workload in args.workloads}


def title(args: argparse.Namespace) -> str:
    where = args.host or "a fresh s3tier per workload in front of moto, on loopback"
    stated = {"LOADTEST_RUN_TIME", "LOADTEST_USERS", "LOADTEST_WORKLOADS"}
    settings = " ".join(
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("LOADTEST_") and k not in stated
    )
    return (
        f"s3tier load test, {time.strftime('%Y-%m-%d %H:%M')}: {args.users} users, "
        f"{args.run_time} per workload, against {where}"
        + (f"; s3tier flags `{args.s3tier_args}`" if args.s3tier_args and not args.host else "")
        + (f"; `{settings}`" if settings else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seconds(args.run_time)  # a bad value fails here, before anything starts
    # SIGTERM unwinds like Ctrl-C, so every `finally` above stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    logs = args.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        if args.host:
            codes = run_against(args, logs)
        else:
            with tempfile.TemporaryDirectory(prefix="s3tier-loadtest-") as scratch:
                codes = run_locally(args, logs, Path(scratch))
    except (RuntimeError, TimeoutError) as exc:  # the harness: a server that would not start
        print(f"stopped, everything started is stopped again: {exc}; logs in {logs}")
        return 2
    summary = Summary.read(args.results_dir, args.workloads)
    table = summary.markdown(title(args))
    (args.results_dir / "summary.md").write_text(table + "\n")
    print("\n" + table)
    # Locust exits 1 when requests failed: that is a finding, listed above. Anything else, or
    # a missing report, means a run did not finish.
    unfinished = {name: code for name, code in codes.items() if code not in (0, 1)}
    if unfinished or summary.incomplete:
        print(f"\nnot finished (locust exit codes {unfinished}); logs in {logs}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
