"""HTTPS on the client port, with a certificate that rotates under a running server.

cert-manager and its kind replace the PEM files of a Secret in place, and a cache must not drop
its clients' connections to pick the new pair up. Each server process therefore keeps one
`ssl.SSLContext` and loads the new pair into it: new handshakes get the new certificate, and
connections already open keep the session they have. The pair is looked at once a second and
on SIGHUP. A pair that does not load (a half-written file, a key that does not match its
certificate) is logged and the previous one kept, then tried again when either file changes.

With several workers, the supervisor (uvicorn's) takes SIGHUP to restart them gracefully, and
each worker picks up changed files by itself without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger("s3tier.tls")
LOOK_EVERY_S = 1.0
Stamp = tuple[tuple[int, int, int], ...]  # (inode, size, mtime) of each file


class ServingCertificate:
    """The server's certificate and key, in a context that is reloaded in place."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._stamp = self._look()
        self.context.load_cert_chain(cert, key)  # a pair that does not load stops start-up
        self._tried = self._stamp

    def _look(self) -> Stamp:
        stats = (os.stat(self.cert), os.stat(self.key))
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def reload(self, force: bool = False) -> bool:
        """Load the pair again if either file changed since it was last tried (or `force`);
        whether a new pair is now served."""
        try:
            stamp = self._look()
        except OSError as exc:
            log.warning("TLS certificate not reloaded: %s", exc)
            return False
        if stamp == self._tried and not force:
            return False
        self._tried = stamp
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS certificate not reloaded, keeping the previous one: %s", exc)
            return False
        self._stamp = stamp
        log.info("TLS certificate reloaded from %s", self.cert)
        return True

    async def watch(self) -> None:
        """Reload on SIGHUP and when the files change, until cancelled."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # else: files only
            loop.add_signal_handler(signal.SIGHUP, self.reload, True)
        while True:
            await asyncio.sleep(LOOK_EVERY_S)
            self.reload()


_serving: ServingCertificate | None = None  # this process's, once the server built it


def context_factory(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`, called in each server process: the context whose pair
    `serving().watch()` keeps current."""
    global _serving
    _serving = ServingCertificate(config.ssl_certfile, config.ssl_keyfile)
    return _serving.context


def serving() -> ServingCertificate | None:
    return _serving


def client_context(ca: str | None) -> ssl.SSLContext | None:
    """How this node verifies the members it asks over https: against `ca` if given, else the
    system's trust store (None: aiohttp's default, the same)."""
    return ssl.create_default_context(cafile=ca) if ca else None
