"""Load tests you watch: a moto upstream, a seeded s3tier and locust's web UI, all on loopback,
until Ctrl-C (or `--run-time`, which also ends locust's run and its UI).

    make loadtest-ui WORKLOAD=hot_set        # then open the two URLs it prints

locust's page shows the requests it makes, with the cache-status plugin's share of hits and
misses; s3tier's live page (/_s3tier/) shows the same traffic from the proxy's side. Every
process is stopped by PID when this one ends, however it ends.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import WORKLOADS  # noqa: E402
from run import _stop, seed_all, stopped_at_exit  # noqa: E402
from tests.harness import CREDENTIALS, VENV_BIN, MotoServer, S3TierServer  # noqa: E402


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default=env("WORKLOAD", "hot_set"), choices=WORKLOADS,
                        help="which load, of the load tests' workloads [env WORKLOAD]")  # fmt: skip
    parser.add_argument("--users", type=int, default=int(env("LOADTEST_USERS", "10")))
    parser.add_argument("--web-port", type=int, default=int(env("LOCUST_WEB_PORT", "8089")))
    parser.add_argument("--run-time", default=env("LOADTEST_RUN_TIME"),
                        help="end by itself after this long (default: at Ctrl-C)")  # fmt: skip
    parser.add_argument("--s3tier-args", default=env("LOADTEST_S3TIER_ARGS", ""))
    args = parser.parse_args(argv)
    args.workloads = [args.workload]  # what seed_all seeds
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.update(CREDENTIALS)
    scratch = Path(tempfile.mkdtemp(prefix="s3tier-loadtest-ui-"))
    logs = scratch / "logs"
    logs.mkdir()
    moto = MotoServer(scratch)
    with stopped_at_exit(moto, logs / "moto.copy.log"):
        moto.start()
        seed_all(args, moto.url)
        workdir = scratch / "s3tier"
        workdir.mkdir()
        server = S3TierServer(workdir, moto.url, *shlex.split(args.s3tier_args))
        with stopped_at_exit(server, logs / "s3tier.copy.log"):
            server.start()
            argv_ = [str(VENV_BIN / "locust"), "-f", str(HERE / f"{args.workload}.py"),
                     "--host", server.url, "--web-host", "127.0.0.1",
                     "--web-port", str(args.web_port), "--users", str(args.users),
                     "--spawn-rate", str(args.users), "--autostart"]  # fmt: skip
            if args.run_time:
                argv_ += ["--run-time", args.run_time, "--autoquit", "0"]
            with open(logs / "locust.log", "wb") as log:
                locust = subprocess.Popen(argv_, stdout=log, stderr=subprocess.STDOUT)
            print(f"locust:  http://127.0.0.1:{args.web_port}/", flush=True)
            print(f"s3tier:  {server.url}/_s3tier/", flush=True)
            print(f"logs:    {logs}  (Ctrl-C stops everything)", flush=True)
            try:
                signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
                code = locust.wait()
            except KeyboardInterrupt:
                code = 0
            finally:
                _stop(locust)
    print("stopped: locust, s3tier and moto", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
