"""The embedded S3 server for a first run with no upstream configured: moto, on loopback.

It lives in memory and vanishes with the process; it exists so that `make run` gives a newcomer
a working endpoint at once, not to store anything that matters. So moto is the `s3tier[embedded]`
extra, not a dependency: a production install (the container image) has no S3 server in it, and
`serve` without `--upstream` there stops at once with what to do instead.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from config.settings import SETTINGS_BY_NAME, SettingsError

EMBEDDED_CREDENTIALS = ("s3tier-embedded", "s3tier-embedded")


@dataclass(slots=True)
class EmbeddedS3:
    url: str
    _server: Any

    @classmethod
    def start(cls) -> EmbeddedS3:
        try:
            from moto.server import ThreadedMotoServer  # only a first run without upstream
        except ImportError as exc:  # moto, or Flask/Werkzeug under it, is not installed
            raise SettingsError(
                f"{SETTINGS_BY_NAME['upstream'].label}: not set, and the embedded S3 server that "
                f"would stand in for it is not installed ({exc}). Give the S3 endpoint to cache, "
                "e.g. --upstream https://s3.us-east-1.amazonaws.com, or install the server: "
                "pip install 's3tier[embedded]'"
            ) from exc
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        return cls(url=f"http://127.0.0.1:{port}", _server=server)

    def stop(self) -> None:
        self._server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
