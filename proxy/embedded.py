"""The embedded S3 server for a first run with no upstream configured: moto, on loopback.

It lives in memory and vanishes with the process; it exists so that `make run` gives a newcomer
a working endpoint at once, not to store anything that matters.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

EMBEDDED_CREDENTIALS = ("s3tier-embedded", "s3tier-embedded")


@dataclass(slots=True)
class EmbeddedS3:
    url: str
    _server: Any

    @classmethod
    def start(cls) -> EmbeddedS3:
        from moto.server import ThreadedMotoServer  # only a first run without upstream needs it

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
