"""The simulated S3 client every workload builds on: locust's FastHttpUser, sending unsigned
path-style requests (s3tier runs with `--auth none` on loopback), checking what comes back."""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from locust import FastHttpUser, constant
from locust.contrib.fasthttp import ResponseContextManager

from common import Dataset, ObjectSpec

# Numbers the simulated users of this process, so that each draws its own reproducible keys.
_user_numbers = itertools.count()


class S3User(FastHttpUser):
    """A client reading and writing one workload's dataset as fast as the server answers."""

    abstract = True
    host = "http://127.0.0.1:8080"  # `make run`; --host or the web UI overrides it
    wait_time = constant(0)
    workload: ClassVar[str]

    dataset: Dataset
    specs: tuple[ObjectSpec, ...]
    rng: random.Random

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.dataset = Dataset.from_options(options)
        self.specs = self.dataset.specs()
        self.rng = random.Random(f"{options.seed}:{self.workload}:user:{next(_user_numbers)}")

    def send(
        self,
        method: str,
        key: str,
        name: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        expect: Collection[int] = (200,),
        length: int | None = None,
        by_status: bool = False,
    ) -> ResponseContextManager:
        """One request, counted as a success when its status is in `expect` and, if `length`
        is given, its body has that many bytes. With `by_status`, successes are counted under
        `<name> [<status>]`, so that each expected outcome has its own line of statistics."""
        with self.client.request(
            method,
            self.dataset.path(key),
            name=name,
            headers=dict(headers or {}),
            data=body,
            catch_response=True,
        ) as response:
            problem = _problem(response, expect, length)
            if problem is None and by_status:
                response.request_meta["name"] = f"{name} [{response.status_code}]"
            if problem is None:
                response.success()
            else:
                response.failure(problem)
        return response


def _problem(response: Any, expect: Collection[int], length: int | None) -> str | None:
    if response.status_code == 0:  # no HTTP answer at all: refused, reset, timed out
        return f"no response: {getattr(response, 'error', None)!r}"
    if response.status_code not in expect:
        return f"HTTP {response.status_code}, expected {'/'.join(map(str, expect))}"
    received = len(response.content or b"")
    if length is not None and received != length:
        return f"{received} bytes, expected {length}"
    return None
