"""Workload (c): read-mostly, with plain and conditional PUTs among the reads.

Each operation is a read with probability 1 - write-ratio; writes are split evenly between
- `put`: overwrite a popular key (new bytes, same size), which must drop s3tier's cached copy;
- `put if-none-match`: create-only (`If-None-Match: *`) on keys beyond the seeded ones; the
  first writer of each key gets 200, later ones 412 Precondition Failed;
- `put if-match`: compare-and-swap on the ETag last seen for a key; 412 when another user
  changed the key in between.
412 is an expected outcome of a conditional write, not a failure: conditional writes are counted
as `<name> [200]` and `<name> [412]`, so the share rejected has its own line. Keys are drawn
with the same Zipf popularity as the hot set, so writes land on cached keys.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from locust import events, task
from locust.env import Environment

import cachestats  # noqa: F401  (plugin: X-Cache-Status per request, the hit ratio)
import final_csv  # noqa: F401  (plugin: CSVs with the final figures)
from common import ZIPF_ALPHA, Option, Zipf, add_options
from s3user import S3User

WRITE_RATIO = Option(
    "--write-ratio", "LOADTEST_WRITE_RATIO", 0.1, "share of operations that are PUTs (0..1)"
)
CONDITIONAL_WRITE = (200, 412)  # RFC 9110 §13.1.1-2: 412 when the precondition is false


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser, "read_mostly", ZIPF_ALPHA, WRITE_RATIO)


@events.test_start.add_listener
def _forget_etags(environment: Environment, **_: Any) -> None:
    ReadMostlyClient.etags = {}


class ReadMostlyClient(S3User):
    workload = "read_mostly"
    # The ETag each key was last seen with, by any user of this process: the "known ETag".
    etags: ClassVar[dict[str, str]] = {}

    def on_start(self) -> None:
        super().on_start()
        options = self.environment.parsed_options
        self.popularity = Zipf(len(self.specs), options.zipf_alpha)
        self.write_ratio = float(options.write_ratio)
        # Bodies are slices of one random buffer, so each write has new bytes and a new ETag.
        self.noise = random.Random(options.seed).randbytes(2 * self.dataset.max_size_bytes)

    @task
    def operate(self) -> None:
        if self.rng.random() >= self.write_ratio:
            self.read()
        else:
            self.rng.choice((self.put, self.put_if_none_match, self.put_if_match))()

    def read(self) -> None:
        spec = self.specs[self.popularity.sample(self.rng)]
        response = self.send("GET", spec.key, "read", length=spec.size)
        self._remember(spec.key, response)

    def put(self) -> None:
        spec = self.specs[self.popularity.sample(self.rng)]
        response = self.send("PUT", spec.key, "put", body=self._body(spec.size))
        self._remember(spec.key, response)

    def put_if_none_match(self) -> None:
        spec = self.specs[self.popularity.sample(self.rng)]
        key = f"{self.dataset.prefix}created/{spec.key.removeprefix(self.dataset.prefix)}"
        self.send(
            "PUT",
            key,
            "put if-none-match",
            headers={"If-None-Match": "*"},
            body=self._body(spec.size),
            expect=CONDITIONAL_WRITE,
            by_status=True,
        )

    def put_if_match(self) -> None:
        spec = self.specs[self.popularity.sample(self.rng)]
        etag = self.etags.get(spec.key)
        if etag is None:
            self.read()  # no ETag known for it yet: read it, as a client would first
            return
        response = self.send(
            "PUT",
            spec.key,
            "put if-match",
            headers={"If-Match": etag},
            body=self._body(spec.size),
            expect=CONDITIONAL_WRITE,
            by_status=True,
        )
        self._remember(spec.key, response)

    def _body(self, size: int) -> bytes:
        start = self.rng.randrange(len(self.noise) - size + 1)
        return self.noise[start : start + size]

    def _remember(self, key: str, response: Any) -> None:
        etag = response.headers.get("ETag") if response.status_code == 200 else None
        if etag:
            self.etags[key] = etag
