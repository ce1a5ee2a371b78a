"""The composition root: the one place that reads settings and builds real things.

`serve` runs uvicorn (uvloop + httptools, the leanest pairing measured here) around the bare ASGI
app. Resources that need a running loop (the upstream session, the thread pools) are built in
the ASGI lifespan and handed to requests through `Components`: no module-level clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pickle
import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

import botocore.session
import uvicorn
import yaml
from botocore.credentials import Credentials

from config.settings import Settings, is_loopback
from proxy import httpserver, logs, tls
from proxy.admin import AdminAccess, AdminContext, build_admin
from proxy.app import Components, handle
from proxy.asgi import Receive, Scope, Send
from proxy.auth import Keyring, Principal
from proxy.embedded import EMBEDDED_CREDENTIALS, EmbeddedS3
from proxy.fastpath import FastPath
from proxy.httpserver import S3TierHttpProtocol
from proxy.live import History, Prices
from tiering.claims import Claims
from tiering.disk import (
    DiskTier,
    adopt_layout,
    mark_clean,
    reclaim_orphans,
    unclean_since_last_run,
)
from tiering.diskledger import DiskLedger
from tiering.epochs import WriteEpochs
from tiering.listing import list_prefix
from tiering.members import Membership, MemberSource
from tiering.metastore import MetaStore
from tiering.metrics import SYNC_INTERVAL_S, Metrics
from tiering.peers import PEER_PREFIX, Peers, PeerSigner
from tiering.ram import RamTier
from tiering.readahead import ReadAheadConfig
from tiering.readthrough import PrefetchConfig, ReadThrough, RetryConfig
from tiering.signing import Signer
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable, new_session
from tiering.warmup import WarmJobs

PEER_CONNECT_TIMEOUT_S = 0.5  # a member on the same network answers a connect at once
log = logging.getLogger("s3tier")
SETTINGS_ENV = "S3TIER_INTERNAL_SETTINGS"  # hands settings to worker processes
EPOCHS_ENV = "S3TIER_INTERNAL_EPOCHS"  # names the shared write-epoch block
LEDGER_ENV = "S3TIER_INTERNAL_DISK_LEDGER"  # names the shared disk budget's ledger


class S3Tier:
    """The ASGI application object: lifespan builds the components, http requests use them."""

    def __init__(self, settings: Settings, credentials: Credentials | None) -> None:
        self.settings = settings
        self._credentials = credentials
        # Built before serving, so a bad credentials file stops start-up with its message.
        self._keyring = client_keyring(settings, credentials) if settings.auth == "sigv4" else None
        self._components: Components | None = None
        self._disk: DiskTier | None = None
        self._claims: Claims | None = None
        self._fleet: Fleet | None = None
        self._tls_task: asyncio.Task[None] | None = None
        self._history = History()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            assert self._components is not None, "lifespan did not run"
            await handle(self._components, scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._components = self._build()
                if self._fleet is not None:
                    await self._fleet.start()
                serving = tls.serving()
                if serving is not None:  # this process serves HTTPS: keep its pair current
                    self._tls_task = asyncio.get_running_loop().create_task(serving.watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _build(self) -> Components:
        s = self.settings
        assert s.upstream is not None
        self._metrics = Metrics()
        self._metrics.price_get.set(s.price_get_per_1000)
        self._metrics.price_egress.set(s.price_egress_per_gib)
        session = new_session(s.upstream_connect_timeout_s, s.upstream_read_timeout_s)
        upstream = Upstream(s.upstream, Signer(self._credentials, s.region), session, self._metrics)
        self._session = session
        self._disk = open_disk_tier(s.disk_dir, s.disk_bytes, shared_disk_ledger())
        # Several workers share one disk tier: each block is fetched by one of them.
        claims = None
        if self._disk is not None and s.workers > 1:
            claims = self._claims = Claims(os.path.join(s.disk_dir, "claims"))
        if s.peers:
            self._fleet = Fleet(s, self._metrics)
        readthrough = ReadThrough(
            ram=RamTier(s.ram_bytes),
            disk=self._disk,
            metas=MetaStore(self._disk, shared_epochs()),
            upstream=upstream,
            block_size=s.block_size_bytes,
            ram_max_object_bytes=s.ram_max_object_bytes,
            freshness=s.freshness,
            serve_stale_on_error=s.serve_stale_on_error,
            retry=RetryConfig(tuple(0.05 * 5**i for i in range(s.upstream_retries))),
            prefetch=PrefetchConfig(
                ReadAheadConfig(max_window=s.readahead_max_blocks),
                s.prefetch_bytes,
                s.prefetch_footer,
            ),
            claims=claims,
            peers=self._fleet.peers if self._fleet is not None else None,
        )
        self._readthrough = readthrough
        fast = FastPath(readthrough, s.base_domain, self._metrics, self._keyring, s.region)
        httpserver.install_fast_path(fast.answer)
        self._jobs = WarmJobs(lambda b, p: list_prefix(upstream, b, p), readthrough.warm)
        self._sync_task = asyncio.get_running_loop().create_task(self._sync_forever())
        admin = AdminContext(
            jobs=self._jobs,
            access=AdminAccess(required=s.auth == "sigv4", token=s.admin_token),
            metrics=self._metrics,
            refresh=self._sync,
            checks=lambda: readiness(upstream, self._disk),
            purge=readthrough.purge,
            forget=readthrough.invalidate,
            config=s.redacted(),
            history=self._history,
            prices=Prices(s.price_get_per_1000, s.price_egress_per_gib),
            fleet=self._fleet.view if self._fleet is not None else None,
        )
        return Components(
            readthrough,
            upstream,
            s.base_domain,
            os.path.join(s.disk_dir, "spool") if self._disk is not None else None,
            s.put_cache_max_bytes,
            self._keyring,
            s.region,
            build_admin(admin),
            self._metrics,
            (s.peer_secret or "").encode() if s.peers else None,
        )

    async def _sync(self) -> None:
        sample = await self._readthrough.sample(self.settings.workers)
        self._metrics.sync(sample)

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL_S)
            try:
                await self._sync()
                # The live page's last minutes: every worker keeps the summed figures.
                self._history.add(time.time(), self._metrics.totals())
            except Exception as exc:  # metrics must never take the server down
                log.warning("metrics sync failed: %s", exc)

    async def _close(self) -> None:
        httpserver.install_fast_path(None)
        if self._tls_task is not None:
            self._tls_task.cancel()
        if self._components is not None:
            self._sync_task.cancel()
            await self._jobs.close()
            await self._components.readthrough.close()
            await self._session.close()
        if self._fleet is not None:
            await self._fleet.close()
        if self._disk is not None:
            self._disk.close()
        if self._claims is not None:
            self._claims.close()


class Fleet:
    """This node's part in a fleet (tiering/peers.py): the members, kept current, and a
    session to them with a short connect timeout, so a member that is down costs little."""

    def __init__(self, s: Settings, metrics: Metrics) -> None:
        assert s.peers is not None
        self.membership = Membership(MemberSource.parse(s.peers))
        self._session = new_session(
            PEER_CONNECT_TIMEOUT_S, s.upstream_read_timeout_s, tls.client_context(s.tls_ca)
        )
        signer = PeerSigner((s.peer_secret or "").encode())
        self.peers = Peers(
            self.membership,
            s.member_id,
            lambda member: Upstream(member + PEER_PREFIX, signer, self._session),
            metrics=metrics,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.membership.start()
        except (OSError, ValueError) as exc:  # the next look may do better
            log.warning("fleet members not read yet (%s): %s", self.membership.source, exc)
        log.info("fleet members: %s", ", ".join(self.membership.members) or "none yet")
        self._task = asyncio.get_running_loop().create_task(self.membership.run())

    def view(self) -> dict[str, object]:
        """This node's view of the fleet, for the live page."""
        return {
            "me": self.peers.me,
            "members": list(self.membership.members),
            "circuits_open": self.peers.circuits_open(),
        }

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._session.close()


def shared_epochs() -> WriteEpochs:
    """The server's write epochs: the shared block when there are several workers."""
    name = os.environ.get(EPOCHS_ENV)
    return WriteEpochs(name) if name else WriteEpochs()


def shared_disk_ledger() -> DiskLedger:
    """One disk budget for the server: the shared ledger when there are several workers."""
    name = os.environ.get(LEDGER_ENV)
    return DiskLedger(name=name) if name else DiskLedger()


def open_disk_tier(directory: str, max_bytes: int, ledger: DiskLedger) -> DiskTier | None:
    """The disk tier, or None when it is switched off or cannot be opened: a broken disk
    degrades the proxy to RAM and pass-through, it does not stop it."""
    if max_bytes <= 0:
        return None
    try:
        return DiskTier(directory, max_bytes, ledger=ledger)
    except Exception as exc:
        log.warning("disk tier unavailable, serving without it: %s: %s", type(exc).__name__, exc)
        return None


async def readiness(upstream: Upstream, disk: DiskTier | None) -> dict[str, str]:
    """The upstream answers (any HTTP status will do) and the disk tier takes writes."""
    checks: dict[str, str] = {}
    try:
        await upstream.fetch("HEAD", "/", {}, 0, operation="head")
        checks["upstream"] = "ok"
    except (UpstreamUnavailable, UpstreamBroken) as exc:
        checks["upstream"] = f"unreachable: {exc}"
    if disk is not None:
        checks["disk"] = "ok" if await disk.writable() else "not writable"
    return checks


def serve(settings: Settings) -> None:
    """Run the proxy until interrupted."""
    logs.configure(settings.log_level, settings.log_format)
    httpserver.configure(settings.header_timeout_s)
    embedded = None
    if settings.upstream is None:
        embedded = EmbeddedS3.start()
        settings = replace(settings, upstream=embedded.url)
        log.info(
            "no upstream configured: started embedded S3 server at %s (in memory)", embedded.url
        )
    if settings.auth == "none" and not is_loopback(settings.host):
        log.warning(
            "listening on %s with --auth none: anyone who can reach it can use it", settings.host
        )
    log.info("starting s3tier %s", json.dumps(settings.redacted(), default=str))
    if settings.disk_bytes > 0:
        adopt_layout(settings.disk_dir, settings.block_size_bytes)
    if settings.disk_bytes > 0 and unclean_since_last_run(settings.disk_dir):
        threading.Thread(target=reclaim_orphans, args=(settings.disk_dir,), daemon=True).start()
    common: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=S3TierHttpProtocol,
        lifespan="on",
        server_header=False,
        access_log=False,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to ours (proxy/logs.py)
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    if settings.tls_cert and settings.tls_key:
        try:  # a pair that does not load stops start-up here, with its reason
            tls.ServingCertificate(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"s3tier: --tls-cert/--tls-key: {exc}") from exc
        common.update(
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
            ssl_context_factory=tls.context_factory,
        )
    epochs: WriteEpochs | None = None
    ledger: DiskLedger | None = None
    try:
        if settings.workers == 1:
            uvicorn.run(build_app(settings, embedded is not None), **common)
        else:
            os.environ[SETTINGS_ENV] = _encode(settings, embedded is not None)
            # Several processes: metrics go to shared memory-mapped files, summed at scrape.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="s3tier-metrics-")
            # Writes seen by every worker: one block of write epochs, owned by this process.
            epochs = WriteEpochs(f"s3tier-epochs-{os.getpid()}", create=True)
            os.environ[EPOCHS_ENV] = epochs.name or ""
            ledger = DiskLedger(settings.workers, f"s3tier-disk-{os.getpid()}", create=True)
            os.environ[LEDGER_ENV] = ledger.name or ""
            uvicorn.run(
                "proxy.server:app_from_environment",
                factory=True,
                workers=settings.workers,
                **common,
            )
    finally:
        if epochs is not None:
            epochs.close(unlink=True)
        if ledger is not None:
            ledger.close(unlink=True)
        if settings.disk_bytes > 0:
            mark_clean(settings.disk_dir)
        metrics_dir = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()


def build_app(settings: Settings, embedded: bool) -> S3Tier:
    return S3Tier(settings, upstream_credentials(embedded))


def app_from_environment() -> S3Tier:
    """Factory for worker processes, which cannot be handed the settings object directly."""
    settings, embedded = pickle.loads(base64.b64decode(os.environ[SETTINGS_ENV]))
    logs.configure(settings.log_level, settings.log_format)
    httpserver.configure(settings.header_timeout_s)
    return build_app(settings, embedded)


def _encode(settings: Settings, embedded: bool) -> str:
    return base64.b64encode(pickle.dumps((settings, embedded))).decode()


def upstream_credentials(embedded: bool) -> Credentials | None:
    """The standard AWS chain (environment, shared config and profile, container and instance
    roles), through botocore. The embedded server accepts any key, so it gets a fixed one."""
    found = botocore.session.Session().get_credentials()
    if found is None and embedded:
        return Credentials(*EMBEDDED_CREDENTIALS)
    if found is None:
        log.warning("no AWS credentials found: upstream requests will be sent unsigned")
    return found


def client_keyring(settings: Settings, upstream: Credentials | None) -> Keyring:
    """The keys clients may sign with: the credentials file, else the proxy's own upstream key,
    which is what a sidecar sharing its pod's identity needs."""
    if settings.credentials_file is not None:
        try:
            with open(settings.credentials_file, encoding="utf-8") as handle:
                return Keyring.from_mapping(yaml.safe_load(handle))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            message = f"s3tier: --credentials-file {settings.credentials_file}: {exc}"
            raise SystemExit(message) from exc
    if upstream is None:
        raise SystemExit("s3tier: --auth sigv4 needs --credentials-file or AWS credentials")
    frozen = upstream.get_frozen_credentials()
    return Keyring([Principal(frozen.access_key, frozen.secret_key, None)])
