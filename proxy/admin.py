"""The admin surface under /_s3tier/, served by FastAPI with its OpenAPI docs at /_s3tier/docs.

Bucket names start with a letter or a digit, so no S3 request can ever reach these paths. Under
--auth sigv4 every admin route but the probes requires `Authorization: Bearer <admin token>`;
without a configured token they are refused. Under --auth none (loopback) they are open.

    GET  healthz          liveness (answered on the lean path, never here)
    GET  readyz           readiness: upstream answers, disk tier writable
    GET  metrics          Prometheus exposition, summed across workers
    GET  stats            tier usage, hit ratios since start, upstream bytes saved (JSON)
    POST purge            forget a key, or everything under a prefix
    GET  config           the effective settings, secrets masked
    POST/GET/DELETE warm  warm-up jobs
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from tiering.blockloads import SOURCE_NAMES
from tiering.blocks import ObjectId
from tiering.metrics import RESULTS, UPSTREAM_OPERATIONS, Metrics
from tiering.warmup import WarmJob, WarmJobs

PREFIX = "/_s3tier"


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

    def __call__(self, authorization: Annotated[str | None, Header()] = None) -> None:
        if not self._required:
            return
        if self._token is None:
            raise HTTPException(403, "admin surface disabled: set --admin-token")
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), self._token.encode()):
            raise HTTPException(401, "missing or wrong admin token")


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
        """Tier usage, hit ratios since start and the upstream bytes the cache saved."""
        await ctx.refresh()
        return summarize(ctx.metrics.totals())

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


def summarize(totals: dict[str, float]) -> dict[str, object]:
    """The /stats document from summed metric samples."""

    def value(name: str, **labels: str) -> float:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return totals.get(f"{name}{{{inner}}}" if inner else name, 0.0)

    results = {r: value("s3tier_cache_results_total", result=r) for r in RESULTS if r != "none"}
    reads = sum(results.values()) - results["bypass"]
    hits = sum(results[r] for r in ("hit_ram", "hit_disk", "hit_peer", "revalidated", "stale"))
    served = {t: value("s3tier_served_bytes_total", tier=t) for t in SOURCE_NAMES.values()}
    tiers = {
        t: {
            "used_bytes": value("s3tier_tier_usage_bytes", tier=t),
            "capacity_bytes": value("s3tier_tier_capacity_bytes", tier=t),
            "entries": value("s3tier_tier_entries", tier=t),
        }
        for t in ("ram", "disk")
    }
    return {
        "cache_results": results,
        "hit_ratio": round(hits / reads, 4) if reads else None,
        "ram_hit_ratio": round(results["hit_ram"] / reads, 4) if reads else None,
        "served_bytes": served,
        "upstream_bytes_saved": served["ram"] + served["disk"] + served["peer"],
        "upstream_received_bytes": sum(
            value("s3tier_upstream_received_bytes_total", operation=op)
            for op in UPSTREAM_OPERATIONS
        ),
        "tiers": tiers,
    }


def _found(job: WarmJob | None) -> WarmJob:
    if job is None:
        raise HTTPException(404, "no such warm-up job")
    return job
