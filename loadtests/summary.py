"""One table over all workloads of a run, read back from locust's CSV and the cache-status CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import AGGREGATED, CACHE_TITLES, HIT_ROW

HEADER = (
    "| workload | requests | failures | req/s | MiB/s | p50 ms | p95 ms | p99 ms | max ms "
    "| hit ratio | byte hit ratio | cache statuses |"
)


@dataclass(frozen=True, slots=True)
class WorkloadFigures:
    workload: str
    requests: int
    failures: int
    requests_per_s: float
    mib_per_s: float
    p50_ms: str
    p95_ms: str
    p99_ms: str
    max_ms: float
    hit_ratio: float | None
    byte_hit_ratio: float | None
    statuses: str
    errors: tuple[str, ...]  # failed requests by error, and exceptions in the locustfile

    @classmethod
    def read(cls, results: Path, workload: str) -> WorkloadFigures:
        total = _rows(results / f"{workload}_stats.csv", "Name", "Aggregated")[0]
        cache = _rows(results / f"{workload}_cache_status.csv", "Name", AGGREGATED)
        status, share, byte_share = (
            CACHE_TITLES[key] for key in ("status", "request_share", "byte_share")
        )
        hits = next((row for row in cache if row[status] == HIT_ROW), None)
        requests_per_s = float(total["Requests/s"])
        return cls(
            workload=workload,
            requests=int(total["Request Count"]),
            failures=int(total["Failure Count"]),
            requests_per_s=requests_per_s,
            mib_per_s=requests_per_s * float(total["Average Content Size"]) / 2**20,
            p50_ms=total["50%"],
            p95_ms=total["95%"],
            p99_ms=total["99%"],
            max_ms=float(total["Max Response Time"]),
            hit_ratio=float(hits[share]) if hits else None,
            byte_hit_ratio=float(hits[byte_share]) if hits else None,
            statuses=", ".join(
                f"{row[status]} {row[CACHE_TITLES['requests']]}"
                for row in cache
                if row[status] != HIT_ROW
            ),
            errors=_errors(results, workload),
        )

    def markdown(self) -> str:
        cells = (
            self.workload,
            str(self.requests),
            str(self.failures),
            f"{self.requests_per_s:.1f}",
            f"{self.mib_per_s:.1f}",
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            f"{self.max_ms:.0f}",
            _percent(self.hit_ratio),
            _percent(self.byte_hit_ratio),
            self.statuses or "-",
        )
        return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True, slots=True)
class Summary:
    figures: tuple[WorkloadFigures, ...]
    missing: tuple[str, ...]  # workloads whose reports are absent or unreadable

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)

    @classmethod
    def read(cls, results: Path, workloads: Sequence[str]) -> Summary:
        figures, missing = [], []
        for workload in workloads:
            html = results / f"{workload}.html"
            try:
                figures.append(WorkloadFigures.read(results, workload))
            except (OSError, LookupError, ValueError):
                missing.append(workload)
                continue
            if not html.exists():
                missing.append(workload)
        return cls(tuple(figures), tuple(missing))

    def markdown(self, title: str) -> str:
        lines = [title, "", HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
        lines += [figures.markdown() for figures in self.figures]
        errors = [f"- {f.workload}: {error}" for f in self.figures for error in f.errors]
        if errors:
            lines += ["", "Failed requests and locustfile exceptions:", *errors]
        if self.missing:
            lines += ["", f"No complete report for: {', '.join(self.missing)}"]
        return "\n".join(lines)


def _errors(results: Path, workload: str) -> tuple[str, ...]:
    failures = _all_rows(results / f"{workload}_failures.csv")
    exceptions = _all_rows(results / f"{workload}_exceptions.csv")
    return (
        *(f"{r['Method']} {r['Name']}: {r['Error']} x{r['Occurrences']}" for r in failures),
        *(f"exception x{r['Count']}: {r['Message']}" for r in exceptions),
    )


def _all_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _rows(path: Path, column: str, value: str) -> list[dict[str, str]]:
    rows = [row for row in _all_rows(path) if row[column] == value]
    if not rows:
        raise LookupError(f"no {value!r} row in {path}")
    return rows


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"
