"""The admin surface under /_s3tier/, served by FastAPI with its OpenAPI docs.

Bucket names start with a letter or a digit, so no S3 request can ever reach these paths. Under
--auth sigv4 every admin route but the probes requires `Authorization: Bearer <admin token>`;
without a configured token they are refused. Under --auth none (loopback) they are open.
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

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


def build_admin(jobs: WarmJobs, access: AdminAccess) -> FastAPI:
    app = FastAPI(
        title="s3tier admin",
        docs_url=f"{PREFIX}/docs",
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
    )
    guarded = [Depends(access)]

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
