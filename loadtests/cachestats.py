"""A locust plugin: s3tier's `X-Cache-Status` per request, and the hit ratio beside latency.

Importing this module from a locustfile installs it. For every response that carries
`X-Cache-Status` (s3tier answers every object GET and HEAD with one) it records the request
under (request name, cache status) with its response time and size. Responses without the
header (PUTs, connection errors, endpoints that are not s3tier) are not counted here.

Where the figures show:
- web UI: a "Cache status" tab with, per request name and status, the count, its share, bytes
  and response-time percentiles, plus a `HIT (RAM+DISK)` row per name whose request share is
  the hit ratio; a CSV download beside locust's own;
- at the end of a run: the same table printed after locust's summary, and written to
  `<--csv prefix>_cache_status.csv` when locust writes CSVs;
- distributed runs: workers send their figures to the master with locust's own reports.

The figures live apart from locust's request statistics, so the request counts, totals and
requests/s of the run are not doubled by them.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Response, make_response, request
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import RequestStats, StatsEntry

from common import AGGREGATED, CACHE_COLUMNS, HIT_ROW, HITS

HEADER = "X-Cache-Status"
TAB_KEY = "cache-status"
CSV_ROUTE = "/cache-status/csv"
REPORT_KEY = "cache_status"  # in the dicts workers send to the master

console = logging.getLogger("locust.stats_logger")  # locust prints its own summary through it


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a request name and a cache status, or a subtotal of statuses."""

    name: str
    status: str
    requests: int
    request_share: float
    bytes: int
    byte_share: float
    avg_ms: float
    p50_ms: int
    p95_ms: int
    p99_ms: int
    max_ms: float

    @classmethod
    def of(cls, name: str, status: str, entry: StatsEntry, whole: StatsEntry) -> Row:
        return cls(
            name=name,
            status=status,
            requests=entry.num_requests,
            request_share=entry.num_requests / max(whole.num_requests, 1),
            bytes=entry.total_content_length,
            byte_share=entry.total_content_length / max(whole.total_content_length, 1),
            avg_ms=entry.avg_response_time,
            p50_ms=entry.get_response_time_percentile(0.5),
            p95_ms=entry.get_response_time_percentile(0.95),
            p99_ms=entry.get_response_time_percentile(0.99),
            max_ms=entry.max_response_time,
        )

    def as_text(self) -> list[str]:
        return [
            self.name,
            self.status,
            str(self.requests),
            f"{self.request_share:.1%}",
            f"{self.bytes / 2**20:.1f} MiB",
            f"{self.byte_share:.1%}",
            f"{self.avg_ms:.1f}",
            str(self.p50_ms),
            str(self.p95_ms),
            str(self.p99_ms),
            f"{self.max_ms:.0f}",
        ]


class CacheStats:
    """Requests, bytes and response times per (request name, cache status)."""

    def __init__(self) -> None:
        self._stats = RequestStats(use_response_times_cache=False)

    def log(self, name: str, status: str, response_time_ms: float, length: int) -> None:
        # The cache status takes the place of the method in locust's (name, method) key. Times
        # stay float milliseconds, as locust's own statistics keep them, so sub-ms averages hold.
        self._stats.log_request(status, name, response_time_ms, length)  # type: ignore[arg-type]

    def reset(self) -> None:
        self._stats.clear_all()

    def report(self) -> list[dict[str, Any]]:
        """The figures since the last report, for a worker to send to the master."""
        return [entry.get_stripped_report() for entry in self._stats.entries.values()]

    def merge(self, reports: Iterable[dict[str, Any]]) -> None:
        """Add a worker's report (on the master)."""
        for data in reports:
            entry = StatsEntry.unserialize(data, self._stats)  # type: ignore[arg-type]
            self._stats.get(entry.name, entry.method).extend(entry)

    def rows(self) -> list[Row]:
        """Per request name: one row per status and a hit subtotal; then the same over all."""
        by_name: dict[str, dict[str, StatsEntry]] = {}
        for (name, status), entry in sorted(self._stats.entries.items()):
            if entry.num_requests:
                by_name.setdefault(name, {})[status] = entry
        statuses = sorted({status for entries in by_name.values() for status in entries})
        overall = {
            status: _total(
                self._stats,
                AGGREGATED,
                status,
                [entries[status] for entries in by_name.values() if status in entries],
            )
            for status in statuses
        }
        rows = [row for name, entries in by_name.items() for row in _rows(name, entries)]
        return [*rows, *_rows(AGGREGATED, overall)] if overall else rows


def _total(stats: RequestStats, name: str, label: str, entries: Iterable[StatsEntry]) -> StatsEntry:
    total = StatsEntry(stats, name, label)
    for entry in entries:
        total.extend(entry)
    return total


def _rows(name: str, statuses: dict[str, StatsEntry]) -> list[Row]:
    stats = next(iter(statuses.values())).stats
    whole = _total(stats, name, "", statuses.values())
    hits = _total(stats, name, HIT_ROW, (e for s, e in statuses.items() if s in HITS))
    rows = [Row.of(name, status, entry, whole) for status, entry in statuses.items()]
    return [*rows, Row.of(name, HIT_ROW, hits, whole)]


# --- output -----------------------------------------------------------------------------


def csv_text(rows: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(title for _, title in CACHE_COLUMNS)
    for row in rows:
        writer.writerow(round(v, 4) if isinstance(v, float) else v for v in _values(row))
    return out.getvalue()


def table_text(rows: list[Row]) -> str:
    cells = [[title for _, title in CACHE_COLUMNS], *(row.as_text() for row in rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(CACHE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _values(row: Row) -> list[Any]:
    return [getattr(row, key) for key, _ in CACHE_COLUMNS]


# --- wiring into locust ----------------------------------------------------------------


def install(environment: Environment) -> CacheStats:
    """Record cache statuses in `environment` and show them; returns the figures."""
    stats = CacheStats()
    hooks = environment.events

    @hooks.request.add_listener
    def on_request(name: str, response_time: float, response_length: int, **kwargs: Any) -> None:
        headers = getattr(kwargs.get("response"), "headers", None)
        status = headers.get(HEADER) if headers is not None else None
        if status:
            stats.log(name, status, response_time, response_length or 0)

    @hooks.report_to_master.add_listener
    def send_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = stats.report()

    @hooks.worker_report.add_listener
    def receive_from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
        stats.merge(data.get(REPORT_KEY, ()))

    hooks.reset_stats.add_listener(stats.reset)
    # `quit` comes after locust has printed its own summary, so this table follows it.
    hooks.quit.add_listener(lambda **_: _final_report(environment, stats))
    if environment.web_ui is not None:
        _extend_web_ui(environment, stats)
    return stats


def _final_report(environment: Environment, stats: CacheStats) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master reports for the whole run
    rows = stats.rows()
    if rows:
        console.info("\nCache status (X-Cache-Status):\n%s\n", table_text(rows))
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_cache_status.csv", "w", newline="", encoding="utf-8") as file:
            file.write(csv_text(rows))


def _extend_web_ui(environment: Environment, stats: CacheStats) -> None:
    web_ui = environment.web_ui
    assert web_ui is not None
    web_ui.template_args["extended_tabs"] = [{"title": "Cache status", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB_KEY,
            "structure": [{"key": key, "title": title} for key, title in CACHE_COLUMNS],
        }
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": f".{CSV_ROUTE}", "title": "Download cache status CSV"}
    ]

    @web_ui.app.after_request
    def add_cache_status(response: Response) -> Response:
        # The dashboard polls /stats/requests every couple of seconds; the tab reads from it.
        if not request.path.endswith("/stats/requests") or not response.is_json:
            return response
        rows = [_display(row) for row in stats.rows()]
        body = {**response.get_json(), "extended_stats": [{"key": TAB_KEY, "data": rows}]}
        response.set_data(web_ui.app.json.dumps(body))
        return response

    @web_ui.app.route(CSV_ROUTE)
    def cache_status_csv() -> Response:
        response = make_response(csv_text(stats.rows()))
        response.headers["Content-Type"] = "text/csv"
        response.headers["Content-Disposition"] = "attachment;filename=cache_status.csv"
        return response


def _display(row: Row) -> dict[str, Any]:
    return dict(zip((key for key, _ in CACHE_COLUMNS), row.as_text(), strict=True))


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    install(environment)
