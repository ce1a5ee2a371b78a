"""Side-by-side benchmark of s3tier and nginx (proxy_cache) over one upstream, on loopback.

    .venv/bin/python benchmarks/bench.py             # what `make bench` runs: BENCHMARKS.md
    BENCH_QUICK=1 .venv/bin/python benchmarks/bench.py   # tiny and fast: harness check only
    BENCH_WORKLOADS=W1,W2 BENCH_REPEATS=5 .venv/bin/python benchmarks/bench.py

Starts moto (objects public-read), one counting shim per server in front of it, and per
workload a fresh s3tier and a fresh nginx rendered from ../shared/peers/nginx-proxy-cache.conf;
drives them with wrk and an aiohttp client, servers interleaved, each measurement repeated.
Writes BENCHMARKS.md, docs/bench/results.json and PNG plots (a quick run writes to a scratch
folder unless --out-dir is given). Every process is stopped by PID, on failure too, and a
watchdog bounds the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import document  # noqa: E402
import machine  # noqa: E402
import plots  # noqa: E402
import report  # noqa: E402
import seed  # noqa: E402
from rig import Rig  # noqa: E402
from servers import ROOT, find_tool, peer_template  # noqa: E402
from workloads import WORKLOADS, Plan  # noqa: E402

APT_LINE = "apt-get install -y nginx wrk"


class Overran(Exception):
    """The watchdog fired: the run took longer than its budget."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env("BENCH_QUICK", "") not in ("", "0"),
        help="tiny sizes, 1 s loads [env BENCH_QUICK=1]",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=int(env("BENCH_REPEATS") or 0) or None,
        help="repetitions of each measurement (default 3; quick 1) [env BENCH_REPEATS]",
    )
    parser.add_argument(
        "--workloads",
        default=env("BENCH_WORKLOADS") or ",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} [env BENCH_WORKLOADS]",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env("BENCH_S3TIER_WORKERS") or 2),
        help="s3tier --workers for the main table [env BENCH_S3TIER_WORKERS]",
    )
    parser.add_argument(
        "--alt-workers",
        default=env("BENCH_ALT_WORKERS") or "1",
        help="also measure s3tier with this many workers in W1-W3 (0: no; "
        "never in quick mode) [env BENCH_ALT_WORKERS]",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=env("BENCH_OUT_DIR") or None,
        help="write BENCHMARKS.md, results.json and plots here instead [env BENCH_OUT_DIR]",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float(env("BENCH_BUDGET_S", "0") or 0),
        help="hard wall-clock limit (default 1800 s; quick 240 s) [env BENCH_BUDGET_S]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="run nothing: write the markdown and plots again from a results.json",
    )
    args = parser.parse_args(argv)
    ids = {w.upper(): w for w in WORKLOADS}  # w1s, W1S and W1s all name W1s
    args.workloads = [ids.get(w.strip().upper(), w.strip()) for w in args.workloads.split(",")]
    args.workloads = [w for w in args.workloads if w]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    alt = int(args.alt_workers) if str(args.alt_workers).strip() not in ("", "0") else None
    args.alt_workers = None if args.quick or alt == args.workers else alt
    args.budget_s = args.budget_s or (240.0 if args.quick else 1800.0)
    return args


def tools() -> tuple[str, str]:
    found = {name: find_tool(name) for name in ("nginx", "wrk")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SystemExit(
            f"bench: {' and '.join(missing)} not installed; `make bench` installs "
            f"them, or run: {APT_LINE}"
        )
    return found["nginx"] or "", found["wrk"] or ""


def outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """(markdown file, folder for results.json and plots)."""
    if args.out_dir is not None:
        return args.out_dir / "BENCHMARKS.md", args.out_dir
    if args.quick:  # a quick run must not replace the real results
        folder = Path(tempfile.gettempdir()) / "s3tier-bench-quick"
        return folder / "BENCHMARKS.md", folder
    return ROOT / "BENCHMARKS.md", ROOT / "docs" / "bench"


@contextlib.contextmanager
def bounded(budget_s: float) -> Iterator[None]:
    """SIGALRM past the budget, SIGTERM/SIGINT as exceptions: the `finally`s stop everything."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Overran(f"the run overran its {budget_s:.0f} s budget")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {
        s: signal.signal(s, h)
        for s, h in (
            (signal.SIGALRM, on_alarm),
            (signal.SIGTERM, on_term),
            (signal.SIGINT, on_term),
        )
    }
    signal.alarm(int(budget_s) + 1)
    try:
        yield
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    args: argparse.Namespace, plan: Plan, nginx: str, wrk: str, scratch: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Rig.started(scratch, nginx, wrk, args.workers, args.alt_workers, log) as rig:
        seed.seed(rig.moto.url, [], create_bucket=True)
        for wid in args.workloads:
            code = machine.code_state()
            log(f"{wid}: start (server code {code})")
            started = time.monotonic()
            try:
                results[wid] = WORKLOADS[wid](rig, plan)
            except Overran as exc:  # report what did run; the servers stop on the way out
                results[wid] = {"error": str(exc), "elapsed_s": time.monotonic() - started}
                log(f"{wid}: {exc}")
                break
            except Exception as exc:  # one workload failing must not hide the others
                traceback.print_exc()
                results[wid] = {"error": f"{type(exc).__name__}: {exc}"}
            results[wid]["elapsed_s"] = round(time.monotonic() - started, 1)
            results[wid]["code"] = {"start": code, "end": machine.code_state()}
            log(f"{wid}: done in {results[wid]['elapsed_s']} s")
        alt_name = rig.alt_name if args.alt_workers is not None else None
    return {"workloads": results, "alt_name": alt_name}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.render is not None:
        publish(json.loads(args.render.read_text(encoding="utf-8")), *outputs(args))
        return 0
    plan = Plan.quick_plan(args.repeats or 1) if args.quick else Plan.full(args.repeats or 3)
    peer_template()  # fail early, and clearly, when the peer configuration is missing
    nginx, wrk = tools()
    markdown, assets = outputs(args)
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="s3tier-bench-"))
    scratch.chmod(0o755)  # nginx workers (user nobody) must reach their cache below it
    log(
        f"bench: {'quick' if args.quick else 'full'} plan, {plan.repeats} repetitions, "
        f"workloads {','.join(args.workloads)}, scratch {scratch}"
    )
    meta: dict[str, Any] = {
        "command": machine.command([os.path.relpath(__file__, ROOT), *argv]),
        "machine": machine.describe(),
        "versions": machine.versions(nginx, wrk),
        "plan": plan.as_dict(),
        "workers": args.workers,
    }
    try:
        with bounded(args.budget_s):
            outcome = run(args, plan, nginx, wrk, scratch)
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    meta |= {"elapsed_s": time.monotonic() - started, "alt_name": outcome["alt_name"]}
    workloads = outcome["workloads"]
    publish({"meta": meta, "workloads": workloads}, markdown, assets)
    log(f"wrote {markdown} and {assets}; {meta['elapsed_s']:.0f} s in all")
    return 1 if any("error" in d for d in workloads.values()) else 0


def publish(results: dict[str, Any], markdown: Path, assets: Path) -> None:
    """results.json, the plots and the markdown; the table on stdout."""
    ran = {w: d for w, d in results["workloads"].items() if "runs" in d}
    rows = report.evaluate(ran)
    results["figures"] = _figures(rows)
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    drawn = plots.draw(rows, ran, assets)
    document.write(results, markdown, assets, drawn)
    print("\n".join(report.results_table(ran, rows)))


def _figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "workload": r["figure"].workload,
            "key": r["figure"].key,
            "target": r["figure"].target,
            "s3tier": r["s3tier"],
            r["figure"].peer: r["nginx"],  # the peer's spread: nginx, or the upstream direct
            "ratio": r["ratio"],
            "met": r["met"],
        }
        for r in rows
    ]


if __name__ == "__main__":
    sys.exit(main())
