"""The admin surface under /_s3tier/, served by FastAPI with its OpenAPI docs at /_s3tier/docs.

Bucket names start with a letter or a digit, so no S3 request can ever reach these paths. Under
--auth sigv4 every admin route but the probes requires `Authorization: Bearer <admin token>`;
without a configured token they are refused. Under --auth none (loopback) they are open.

    GET  healthz          liveness (answered on the lean path, never here)
    GET  readyz           readiness: upstream answers, disk tier writable
    GET  metrics          Prometheus exposition, summed across workers
    GET  (the prefix)     the live page; ?token= signs a browser in under sigv4
    GET  live             what the page shows (JSON): stats, the last minutes, latency
    GET  stats            tier usage, hit ratios since start, upstream requests and bytes
                          saved and what they would have cost (JSON)
    POST purge            forget a key, or everything under a prefix
    GET  config           the effective settings, secrets masked
    POST/GET/DELETE warm  warm-up jobs
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Cookie, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from proxy.live import DEFAULT_PRICES, History, Prices, series, summarize, window_latency
from tiering.blocks import ObjectId
from tiering.metrics import Metrics
from tiering.warmup import WarmJob, WarmJobs

PREFIX = "/_s3tier"
ASSETS = Path(__file__).parent / "dashboard"
SHIPPED = {  # the page's files and their types; nothing else is served from that folder
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
}
NO_STORE = {"cache-control": "no-store"}


class WarmRequest(BaseModel):
    """A warm-up: a prefix of a bucket, or a list of its keys."""

    bucket: str = Field(min_length=1)
    prefix: str | None = None
    keys: list[str] = Field(default_factory=list, max_length=100_000)
    tier: Literal["ram", "disk"] = "disk"
    concurrency: int = Field(default=4, ge=1, le=64)


class AdminAccess:
    """Who may use the admin routes: everyone (auth none), token holders, or nobody."""

    def __init__(self, required: bool, token: str | None) -> None:
        self._required = required
        self._token = token

    def __call__(
        self,
        authorization: Annotated[str | None, Header()] = None,
        s3tier_admin: Annotated[str | None, Cookie()] = None,
    ) -> None:
        """A bearer token, or the cookie the page's sign-in set (a browser cannot send a
        header when it opens a page)."""
        if not self._required:
            return
        if self._token is None:
            raise HTTPException(403, "admin surface disabled: set --admin-token")
        presented = (authorization or "").removeprefix("Bearer ").strip() or s3tier_admin or ""
        if not self.accepts(presented):
            raise HTTPException(401, "missing or wrong admin token")

    def accepts(self, presented: str) -> bool:
        if not self._required:
            return True
        token = self._token
        return token is not None and hmac.compare_digest(presented.encode(), token.encode())


class PurgeRequest(BaseModel):
    """Forget cached objects: one key, or everything under a prefix ("" for the bucket)."""

    bucket: str = Field(min_length=1)
    key: str | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What the admin routes act on, handed over by the composition root."""

    jobs: WarmJobs
    access: AdminAccess
    metrics: Metrics
    refresh: Callable[[], Awaitable[None]]  # copy the components' counts into the metrics
    checks: Callable[[], Awaitable[dict[str, str]]]  # readiness: name -> "ok" or a reason
    purge: Callable[[str, str], Awaitable[int]]
    forget: Callable[[ObjectId], Awaitable[None]]
    config: dict[str, object]
    history: History = field(default_factory=History)
    prices: Prices = DEFAULT_PRICES
    started: float = field(default_factory=time.time)
    fleet: Callable[[], dict[str, object]] | None = None  # members and open circuits, if any

    def stats(self) -> dict[str, object]:
        return summarize(self.metrics.totals(), self.prices, time.time() - self.started)


def build_admin(ctx: AdminContext) -> FastAPI:
    app = FastAPI(
        title="s3tier admin",
        docs_url=f"{PREFIX}/docs",
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
    )
    guarded = [Depends(ctx.access)]
    jobs = ctx.jobs

    @app.get(f"{PREFIX}/readyz")
    async def readyz() -> JSONResponse:
        """Ready when the upstream answers and the disk tier takes writes (open to probes)."""
        checks = await ctx.checks()
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get(f"{PREFIX}/metrics", dependencies=guarded)
    async def metrics() -> Response:
        await ctx.refresh()
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get(f"{PREFIX}/stats", dependencies=guarded)
    async def stats() -> dict[str, object]:
        """Tier usage, hit ratios since start, the upstream requests and bytes the cache
        saved, and what they would have cost."""
        await ctx.refresh()
        return ctx.stats()

    @app.get(f"{PREFIX}/live", dependencies=guarded)
    async def live() -> dict[str, object]:
        """What the page at /_s3tier/ shows: /stats, the last minutes second by second,
        latency by result over them, warm-up jobs and the fleet."""
        await ctx.refresh()
        points = ctx.history.points()
        now = time.time()
        return {
            "now": now,
            "uptime_s": now - ctx.started,
            "stats": ctx.stats(),
            "series": series(points, ctx.prices),
            "latency": window_latency(points),
            "window_s": points[-1][0] - points[0][0] if len(points) > 1 else 0.0,
            "warm_jobs": [job.view(now) for job in jobs.all()],
            "fleet": ctx.fleet() if ctx.fleet is not None else None,
        }

    @app.get(f"{PREFIX}/", include_in_schema=False)
    async def page(request: Request, token: str | None = None) -> Response:
        """The live page. `?token=` signs a browser in under --auth sigv4: it sets a cookie
        and sends the browser on without the token in its address."""
        if token is not None:
            if not ctx.access.accepts(token):
                raise HTTPException(401, "missing or wrong admin token")
            back = RedirectResponse(f"{PREFIX}/", status_code=303)
            back.set_cookie(
                "s3tier_admin", token, path=f"{PREFIX}/", httponly=True, samesite="strict",
                secure=request.url.scheme == "https",
            )  # fmt: skip
            return back
        ctx.access(request.headers.get("authorization"), request.cookies.get("s3tier_admin"))
        return FileResponse(ASSETS / "index.html", headers=NO_STORE)

    @app.get(f"{PREFIX}/assets/{{name}}", include_in_schema=False, dependencies=guarded)
    async def asset(name: str) -> Response:
        """The page's files, shipped inside the package (no CDN)."""
        if name not in SHIPPED:
            raise HTTPException(404, "no such asset")
        return FileResponse(ASSETS / name, media_type=SHIPPED[name])

    @app.post(f"{PREFIX}/purge", dependencies=guarded)
    async def purge(request: PurgeRequest) -> dict[str, object]:
        if request.key is not None:
            await ctx.forget(ObjectId(request.bucket, request.key))
            return {"purged": 1}
        if request.prefix is None:
            raise HTTPException(422, "give a key or a prefix")
        return {"purged": await ctx.purge(request.bucket, request.prefix)}

    @app.get(f"{PREFIX}/config", dependencies=guarded)
    async def config() -> dict[str, object]:
        """The effective settings, secrets masked."""
        return ctx.config

    @app.post(f"{PREFIX}/warm", status_code=202, dependencies=guarded)
    async def start_warm(request: WarmRequest) -> dict[str, object]:
        """Start pulling a prefix (or keys) into the cache; poll the job for progress."""
        if request.prefix is None and not request.keys:
            raise HTTPException(422, "give a prefix or keys")
        job = jobs.start(
            request.bucket, request.prefix, tuple(request.keys), request.tier, request.concurrency
        )
        return job.view(time.time())

    @app.get(f"{PREFIX}/warm", dependencies=guarded)
    async def list_warm() -> list[dict[str, object]]:
        return [job.view(time.time()) for job in jobs.all()]

    @app.get(f"{PREFIX}/warm/{{job_id}}", dependencies=guarded)
    async def get_warm(job_id: str) -> dict[str, object]:
        return _found(jobs.get(job_id)).view(time.time())

    @app.delete(f"{PREFIX}/warm/{{job_id}}", dependencies=guarded)
    async def cancel_warm(job_id: str) -> dict[str, object]:
        return _found(jobs.cancel(job_id)).view(time.time())

    return app


def _found(job: WarmJob | None) -> WarmJob:
    if job is None:
        raise HTTPException(404, "no such warm-up job")
    return job
