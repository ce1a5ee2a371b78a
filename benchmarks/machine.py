"""What the benchmark ran on and with: the machine, the versions, the command."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _proc_field(path: str, name: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.split(":")[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def describe() -> dict[str, Any]:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(mem_kb) / 2**20, 1) if mem_kb.isdigit() else None,
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


SERVER_CODE = ("proxy", "tiering", "config")


def code_state() -> str:
    """The server code as it is now: the commit, and a digest of any uncommitted change to
    it. Others may edit the tree while a run goes on, so each workload records this."""
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    try:
        diff = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "HEAD", "--", *SERVER_CODE],
            capture_output=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return commit
    return f"{commit}+{hashlib.sha256(diff).hexdigest()[:8]}" if diff else commit


def git_commit() -> str:
    state = code_state()
    if "+" not in state:
        return state
    commit, digest = state.split("+")
    return f"{commit} with uncommitted changes in proxy/, tiering/ or config/ (diff {digest})"


def versions(nginx: str, wrk: str) -> dict[str, str]:
    import aiohttp
    import moto
    import uvicorn

    return {
        "python": platform.python_version(),
        "s3tier": git_commit(),
        "nginx": _first_line([nginx, "-v"]).removeprefix("nginx version: "),
        "wrk": _first_line([wrk, "-v"]).split(" Copyright")[0].removeprefix("wrk "),
        "moto": moto.__version__,
        "uvicorn": uvicorn.__version__,
        "aiohttp": aiohttp.__version__,
    }


def command(argv: list[str]) -> str:
    """The command as run, and `make bench` with its variables when make started us."""
    ours = shlex.join([os.path.relpath(sys.executable, ROOT), *argv])
    bench_env = " ".join(
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_") and v
    )
    if os.environ.get("MAKELEVEL"):
        return f"make bench {bench_env}".strip() + f"  (runs: {ours})"
    return f"{bench_env} {ours}".strip()
