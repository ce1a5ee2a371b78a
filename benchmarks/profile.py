"""Profile s3tier under one of the workloads of the benchmark, with py-spy.

    .venv/bin/python benchmarks/profile.py W1 --py-spy /path/to/py-spy --out docs/bench/profiles

Starts moto and one s3tier with `--workers 1` (one process holds the whole server, so one
profile shows it all), seeds and warms the workload's objects exactly as `bench.py` does, then
runs wrk against it (for W9: pyarrow writing its 48 MiB Parquet file, again and again) while
py-spy samples the server, twice: `<workload>.svg` is a flame graph, `<workload>.txt` the
functions where samples landed, by own time and by total time.
py-spy is not a dependency of the project: `pip install py-spy` somewhere and pass its path.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seed  # noqa: E402
import signed  # noqa: E402
from loadgen import Req, write_keyfile  # noqa: E402
from rig import fetch  # noqa: E402
from seed import Obj  # noqa: E402
from servers import MotoServer, S3Tier, find_tool, running  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
# workload: (objects, object bytes, s3tier flags, wrk connections), as in workloads.py
SETUPS = {
    "W1": (1000, 4 * KIB, ["--ram-bytes", "256MiB"], 64),
    "W1s": (1000, 4 * KIB, ["--ram-bytes", "256MiB", "--region", signed.REGION], 64),
    "W2": (128, MIB, ["--ram-bytes", "512MiB"], 32),
    "W3": (4, 64 * MIB, ["--ram-max-object", "1MiB", "--disk-bytes", "8GiB"], 8),
    "W9": (0, 48 * MIB, [], 1),  # no objects to read: the load writes
}
# The load of W9: one pyarrow write after another, as in writes.py, until the deadline.
PARQUET_LOAD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from writes import parquet_table, parquet_write
table, deadline, n = parquet_table(48 << 20), time.monotonic() + float(sys.argv[3]), 0
while time.monotonic() < deadline:
    parquet_write(sys.argv[2], f"w9/profile-{n}.parquet", table)
    n += 1
"""


def summarise(collapsed: Path, top: int = 25) -> list[str]:
    """Own and total sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]  # per function
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "own time:"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "total time (the frame or anything it called):"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(SETUPS))
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy executable")
    parser.add_argument("--seconds", type=int, default=10, help="profile length")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "bench" / "profiles")
    args = parser.parse_args(argv)
    if not args.py_spy:
        raise SystemExit("profile: py-spy not found; `pip install py-spy` and pass --py-spy")
    wrk = find_tool("wrk")
    if wrk is None:
        raise SystemExit("profile: wrk not installed (apt-get install -y wrk)")
    count, size, flags, connections = SETUPS[args.workload]
    objects = [Obj(f"{args.workload.lower()}/{i:05d}", size) for i in range(count)]
    reqs = [Req(o.path) for o in objects]
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="s3tier-profile-"))
    if args.workload == "W1s":  # W1, every request signed in advance and verified (workloads.py)
        reqs = signed.signed_gets([o.path for o in objects], datetime.datetime.now(datetime.UTC))
        keys = signed.keyring_file(scratch)
        flags = [*flags, "--auth", "sigv4", "--credentials-file", str(keys)]
    try:
        with running(MotoServer(scratch)) as moto:
            seed.seed(moto.url, objects, create_bucket=True)
            with running(S3Tier(scratch, moto.url, 1, *flags)) as server:
                for _ in range(2):
                    fetch(server, reqs, 8, 600)  # type: ignore[arg-type]
                keyfile = write_keyfile(scratch / "keys", reqs)
                length = 2 * args.seconds + 6
                argv = [wrk, "-t2", f"-c{connections}", f"-d{length}s", "-s",
                        str(HERE / "keys.lua"), server.url, "--", str(keyfile), "2"]  # fmt: skip
                if args.workload == "W9":
                    argv = [sys.executable, "-c", PARQUET_LOAD, str(HERE), server.url, str(length)]
                load = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
                try:
                    collapsed = scratch / "stacks.txt"
                    spy = [args.py_spy, "record", "--pid", str(server.pid), "--duration"]
                    spy += [str(args.seconds), "--rate", "200", "--nonblocking"]
                    svg = args.out / f"{args.workload}.svg"
                    subprocess.run([*spy, "--output", str(svg)], check=True, timeout=120)
                    raw = [*spy, "--format", "raw", "--output", str(collapsed)]
                    subprocess.run(raw, check=True, timeout=120)
                finally:
                    load.wait(timeout=2 * args.seconds + 60)
                summary = summarise(collapsed)
                (args.out / f"{args.workload}.txt").write_text("\n".join(summary) + "\n")
                print("\n".join(summary[:30]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
