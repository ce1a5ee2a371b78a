"""Workload (d): a cold scan, every key of the dataset read once, as a batch job or a backup does.

Nothing is read twice, so every answer should be a MISS and the hit ratio near zero: this
measures the cost of the cache on the cold path. The users of one locust process share one
cursor over the keys; once the last key has been read the run stops by itself, before
--run-time if need be. (With several locust processes each scans every key: no shared cursor.)
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, ClassVar

import gevent
from locust import events, task
from locust.env import Environment
from locust.exception import StopUser

import cachestats  # noqa: F401  (plugin: X-Cache-Status per request, the hit ratio)
import final_csv  # noqa: F401  (plugin: CSVs with the final figures)
from common import add_options, size_class
from s3user import S3User

log = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser, "cold_scan")


class Cursor:
    """Hands out each key index once, and knows when the last one has been read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._next = itertools.count()
        self.completed = 0

    def take(self) -> int | None:
        index = next(self._next)
        return index if index < self.total else None

    def complete(self) -> bool:
        """Count one finished read; True for the one that finishes the scan."""
        self.completed += 1
        return self.completed == self.total


@events.test_start.add_listener
def _new_scan(environment: Environment, **_: Any) -> None:
    ColdScanner.cursor = None  # the first user builds it, from the options of this run


class ColdScanner(S3User):
    workload = "cold_scan"
    cursor: ClassVar[Cursor | None] = None

    def on_start(self) -> None:
        super().on_start()
        if ColdScanner.cursor is None:
            ColdScanner.cursor = Cursor(len(self.specs))
        self.scan = ColdScanner.cursor

    @task
    def get_next_object(self) -> None:
        index = self.scan.take()
        if index is None:
            raise StopUser()
        spec = self.specs[index]
        self.send("GET", spec.key, f"scan {size_class(spec.size)}", length=spec.size)
        if self.scan.complete():
            self._stop_run()

    def _stop_run(self) -> None:
        log.info("cold scan complete: all %d keys read once", self.scan.total)
        runner = self.environment.runner
        if runner is not None:
            # From another greenlet, since stopping the runner stops this user's greenlet too.
            stop = runner.quit if self.environment.parsed_options.headless else runner.stop
            gevent.spawn(stop)
