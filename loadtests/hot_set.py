"""Workload (a): a Zipf-distributed hot set of whole-object GETs over objects of mixed sizes.

A few keys take most requests and the tail is long, as in web and object-store traces, so the
hit ratio climbs as the hot keys settle into RAM. Reads are named by size class, so each line of
the statistics is one size of object.

    locust -f loadtests/hot_set.py --host http://127.0.0.1:8080 --zipf-alpha 1.1
"""

from __future__ import annotations

from typing import Any

from locust import events, task

import cachestats  # noqa: F401  (plugin: X-Cache-Status per request, the hit ratio)
import final_csv  # noqa: F401  (plugin: CSVs with the final figures)
from common import ZIPF_ALPHA, Zipf, add_options, size_class
from s3user import S3User


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser, "hot_set", ZIPF_ALPHA)


class HotSetReader(S3User):
    workload = "hot_set"

    def on_start(self) -> None:
        super().on_start()
        self.popularity = Zipf(len(self.specs), self.environment.parsed_options.zipf_alpha)

    @task
    def get_object(self) -> None:
        spec = self.specs[self.popularity.sample(self.rng)]
        self.send("GET", spec.key, f"hot {size_class(spec.size)}", length=spec.size)
