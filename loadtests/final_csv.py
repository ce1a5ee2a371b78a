"""A locust plugin: locust's `--csv` request, failure and exception files, rewritten at the end of
the run with the final figures.

Locust rewrites those files once a second while it runs and not again when it stops, so they can
miss the last second of a run, or all of a run shorter than a second (locust issues #1806 and
#2299); its printed summary and HTML report are complete. Here they are written once more, from
the same statistics as the summary, just before locust closes its own file handles. Each is
written to a new file that replaces the old one, so whatever locust still has buffered for the
old one lands in the replaced file, not in this one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV


def rewrite(environment: Environment) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    files: dict[str, Callable[[Any], None]] = {
        "_stats.csv": writer.requests_csv,
        "_failures.csv": writer.failures_csv,
        "_exceptions.csv": writer.exceptions_csv,
    }
    for suffix, write_rows in files.items():
        path = f"{prefix}{suffix}"
        with open(f"{path}.final", "w", newline="", encoding="utf-8") as file:
            write_rows(csv.writer(file))
        os.replace(f"{path}.final", path)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    # `quit` fires after the run has stopped and before locust closes its CSV files.
    environment.events.quit.add_listener(lambda **_: rewrite(environment))
