"""Real processes for end-to-end tests: a moto S3 server and s3tier itself, on loopback ports.

Each process is started by the test session, stopped by PID, and stopped even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

VENV_BIN = Path(sys.executable).parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(
    url: str,
    process: subprocess.Popen[bytes],
    timeout_s: float = 30,
    context: ssl.SSLContext | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context):
                return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:  # any HTTP answer means it is up
                return
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not start within {timeout_s}s")


class Process:
    """A server process with its output in a log file, stopped by PID."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_context: ssl.SSLContext | None = None  # for an https readiness URL

    def start(self, ready_url: str) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until stop()
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        try:
            wait_until_serving(ready_url, self.proc, context=self.ready_context)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class MotoServer(Process):
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **CREDENTIALS}
        argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        super().__init__(argv, workdir / "moto.log", env)

    def start(self, ready_url: str | None = None) -> None:
        super().start(ready_url or self.url + "/moto-api/")


class S3TierServer(Process):
    """`s3tier serve` in a process of its own, on a free port, with its own disk folder."""

    def __init__(
        self,
        workdir: Path,
        upstream: str | None,
        *extra: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        ca: Path | None = None,
    ) -> None:
        """`ca`: the server serves HTTPS (its --tls-* flags in `extra`) with a certificate
        this CA bundle verifies."""
        self.port = port or free_port()
        self.url = f"{'https' if ca else 'http'}://{host}:{self.port}"
        self.disk_dir = workdir / "disk"
        argv = [str(VENV_BIN / "s3tier"), "serve", "--host", host, "--port", str(self.port)]
        argv += ["--disk-dir", str(self.disk_dir)]
        if upstream is not None:
            argv += ["--upstream", upstream]
        argv += list(extra)
        env = {**os.environ, **CREDENTIALS}
        env.pop("S3TIER_CONFIG", None)
        super().__init__(argv, workdir / "s3tier.log", env)
        if ca is not None:
            self.ready_context = ssl.create_default_context(cafile=str(ca))

    def start(self, ready_url: str | None = None) -> None:
        super().start(ready_url or self.url + "/_s3tier/healthz")

    def restart(self) -> None:
        self.stop()
        self.start()


def s3_client(endpoint: str, **config: object) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),  # type: ignore[arg-type]
    )


class RepeatingFile:
    """A file-like object of `count` copies of `chunk`, so the test holds only one chunk."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self._chunk = chunk
        self._left = count
        self._pending = b""
        self._size = len(chunk) * count

    def __len__(self) -> int:
        return self._size  # lets HTTP clients send Content-Length rather than chunks

    def read(self, size: int = -1) -> bytes:
        out = bytearray(self._pending)
        while (size < 0 or len(out) < size) and self._left:
            out += self._chunk
            self._left -= 1
        if size >= 0:
            self._pending = bytes(out[size:])
            return bytes(out[:size])
        self._pending = b""
        return bytes(out)


class PeakRss:
    """Samples a process's resident memory in a thread while in use: `growth` is the peak
    over what it was on entry."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._interval_s = interval_s
        self.baseline = self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval_s)


# Headers that belong to one response or one hop, not to the object: left out when comparing
# what s3tier sent with what the upstream sent.
PER_RESPONSE_HEADERS = frozenset(
    {"date", "x-amz-request-id", "x-amz-id-2", "x-amzn-requestid", "server", "x-cache-status",
     "connection", "keep-alive", "access-control-allow-origin", "x-amz-content-sha256"}
)  # fmt: skip


def comparable(headers: Any) -> dict[str, str]:
    """An answer's headers that describe the object, by lower-case name."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in PER_RESPONSE_HEADERS}


def sign_as_of(monkeypatch: Any, when: Any) -> None:
    """Make botocore sign as if the clock said `when`. With awscrt installed, boto3 signs S3
    requests with botocore.crt.auth, which imported the clock by name, so both are patched."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: when)
    try:
        import botocore.crt.auth
    except ImportError:  # no awscrt: botocore.auth alone signs
        return
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", lambda *a, **k: when)
