"""From per-repetition records to figures, targets and the markdown of BENCHMARKS.md.

A figure is the median over repetitions of one record key, with its min–max. A ratio is the
median of per-repetition ratios s3tier / nginx: the two were measured back to back in the
same repetition, so pairing them cancels most of the drift of a shared machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIB, GIB = 1 << 20, 1 << 30
SERVERS = ("s3tier", "nginx")


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the results table. `kind` says how the target is judged:
    `ratio>=` / `ratio<=` compare s3tier / nginx with `threshold`; `each==` wants s3tier's
    value equal to `threshold` in every repetition; `abs<=` wants s3tier's median at most
    `threshold`; `none` is reported without a target."""

    workload: str
    key: str
    label: str
    unit: str
    scale: float
    kind: str
    threshold: float
    digits: int = 0
    peer: str = "nginx"  # what s3tier is compared with: nginx, or the upstream direct

    @property
    def target(self) -> str:
        if self.kind == "ratio>=":
            return f"≥ {self.threshold:g}× {self.peer}"
        if self.kind == "ratio<=":
            return f"≤ {self.threshold:g}× {self.peer}"
        if self.kind == "each==":
            return "= object size, every time"
        if self.kind == "abs<=":
            return f"≤ {self.threshold:g} {self.unit}"
        return "—"


FIGURES = (
    Figure("W1", "rps", "requests/s", "req/s", 1, "ratio>=", 1.0),
    Figure("W1", "cpu_us_per_request", "server CPU per request", "µs", 1, "ratio<=", 1.0, 1),
    Figure("W1s", "rps", "requests/s, every request SigV4-verified", "req/s", 1, "ratio>=", 0.8),
    Figure("W2", "bytes_per_s", "bytes/s", "MiB/s", MIB, "ratio>=", 1.0),
    Figure("W2", "cpu_s_per_gib", "server CPU per GiB served", "CPU s/GiB", 1, "ratio<=", 1.2, 2),
    Figure("W3", "bytes_per_s", "bytes/s", "MiB/s", MIB, "ratio>=", 0.9),
    Figure("W3", "cpu_s_per_gib", "server CPU per GiB served", "CPU s/GiB", 1, "ratio<=", 1.5, 2),
    Figure(
        "W4", "upstream_bytes_cold", "upstream bytes fetched, cold", "MiB", MIB, "ratio<=", 1.0, 1
    ),
    Figure("W4", "rps_warm", "requests/s, warm", "req/s", 1, "ratio>=", 1.0),
    Figure(
        "W4", "rps_warm_60k", "requests/s, warm, control: 60 KiB ranges", "req/s", 1, "ratio>=", 1.0
    ),
    Figure("W5", "upstream_over_size", "upstream bytes / object size", "×", 1, "each==", 1.0, 2),
    Figure(
        "W6", "ttfb_p50_delta_ms_small", "TTFB p50 over direct, {small}", "ms", 1, "abs<=", 2.0, 1
    ),
    Figure("W6", "ttfb_p99_delta_ms_small", "TTFB p99 over direct, {small}", "ms", 1, "none", 0, 1),
    Figure(
        "W6", "ttfb_p50_delta_ms_large", "TTFB p50 over direct, {large}", "ms", 1, "abs<=", 2.0, 1
    ),
    Figure("W6", "ttfb_p99_delta_ms_large", "TTFB p99 over direct, {large}", "ms", 1, "none", 0, 1),
    Figure("W7", "byte_hit_ratio", "byte hit ratio", "", 1, "ratio>=", 1.0, 3),
    Figure("W7", "rps", "requests/s", "req/s", 1, "ratio>=", 0.6),
    Figure("W8", "puts_per_s", "PUTs/s", "PUT/s", 1, "ratio>=", 0.9, 0, "direct"),
    Figure("W9", "mib_per_s", "MiB/s written", "MiB/s", 1, "ratio>=", 0.9, 1, "direct"),
    Figure("W10", "mib_per_s", "MiB/s uploaded", "MiB/s", 1, "ratio>=", 0.9, 1, "direct"),
)


def values(workloads: dict[str, Any], wid: str, server: str, key: str) -> list[float]:
    runs = workloads.get(wid, {}).get("runs", {}).get(server, [])
    return [float(r[key]) for r in runs if key in r]


def spread(vals: Sequence[float]) -> dict[str, float] | None:
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def evaluate(workloads: dict[str, Any], s3tier: str = "s3tier") -> list[dict[str, Any]]:
    """Every figure whose workload ran: both servers' spreads, the paired ratio, the verdict."""
    rows = []
    for fig in FIGURES:
        if fig.workload not in workloads:
            continue
        mine = values(workloads, fig.workload, s3tier, fig.key)
        theirs = values(workloads, fig.workload, fig.peer, fig.key)
        ratios = [a / b for a, b in zip(mine, theirs, strict=False) if b]
        row: dict[str, Any] = {
            "figure": fig,
            "s3tier": spread(mine),
            "nginx": spread(theirs),
            "ratio": spread(ratios),
        }
        row["met"] = _met(fig, mine, row["ratio"])
        rows.append(row)
    return rows


def _met(fig: Figure, mine: Sequence[float], ratio: dict[str, float] | None) -> bool | None:
    if fig.kind in ("ratio>=", "ratio<=") and ratio is not None:
        if fig.kind == "ratio>=":
            return ratio["median"] >= fig.threshold
        return ratio["median"] <= fig.threshold
    if fig.kind == "each==" and mine:
        return all(abs(v - fig.threshold) < 1e-9 for v in mine)
    if fig.kind == "abs<=" and mine:
        return statistics.median(mine) <= fig.threshold
    return None


def fmt(s: dict[str, float] | None, scale: float = 1, digits: int = 0) -> str:
    if s is None:
        return "—"
    med, low, high = (s[k] / scale for k in ("median", "min", "max"))
    if low == high:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} [{low:,.{digits}f}–{high:,.{digits}f}]"


def label(fig: Figure, workloads: dict[str, Any]) -> str:
    sizes = workloads.get(fig.workload, {}).get("params", {}).get("sizes", [0, 0])
    text = fig.label
    if "{" in text and isinstance(sizes, list):
        text = text.format(small=size_text(sizes[0]), large=size_text(sizes[1]))
    return f"{text} ({fig.unit})" if fig.unit and fig.unit != "×" else text


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "(no target)"}[met]


def results_table(workloads: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| id | workload | figure | s3tier | nginx | s3tier / nginx | target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fig: Figure = row["figure"]
        title = workloads[fig.workload]["title"]
        ratio = fmt(row["ratio"], 1, 2) if fig.kind.startswith("ratio") else "—"
        out.append(
            f"| {fig.workload} | {title} | {label(fig, workloads)} "
            f"| {fmt(row['s3tier'], fig.scale, fig.digits)} "
            f"| {fmt(row['nginx'], fig.scale, fig.digits)} "
            f"| {ratio} | {fig.target} | {verdict(row['met'])} |"
        )
    return out


def latency_table(workloads: dict[str, Any]) -> list[str]:
    out = [
        "| id | latency measured | s3tier p50 / p99 (ms) | nginx p50 / p99 (ms) "
        "| s3tier RSS (MiB) | nginx RSS (MiB) | server CPU, cores busy: s3tier / nginx |",
        "|---|---|---|---|---|---|---|",
    ]
    what = {
        "W1": "wrk",
        "W1s": "wrk, SigV4-signed",
        "W2": "wrk",
        "W3": "wrk",
        "W4": "wrk, warm ranges",
        "W5": "whole GET, 64 at once",
        "W6": "TTFB, cold, large objects",
        "W7": "wrk",
        "W8": "boto3 PUT, 16 writers (the nginx columns: direct)",
        "W9": "one pyarrow write (the nginx columns: direct)",
        "W10": "one aws s3 cp, multipart (the nginx columns: direct)",
    }
    for wid in workloads:
        cells = []
        servers = ("s3tier", workloads[wid].get("params", {}).get("peer", "nginx"))
        for server in servers:
            p50 = spread(values(workloads, wid, server, "p50_ms"))
            p99 = spread(values(workloads, wid, server, "p99_ms"))
            cells.append(f"{fmt(p50, 1, 1)} / {fmt(p99, 1, 1)}")
        rss = [fmt(_max(values(workloads, wid, s, "rss_bytes")), MIB) for s in servers]
        cores = [fmt(spread(values(workloads, wid, s, "server_cores")), 1, 2) for s in servers]
        out.append(
            f"| {wid} | {what.get(wid, '')} | {cells[0]} | {cells[1]} | {rss[0]} | {rss[1]} "
            f"| {cores[0]} / {cores[1]} |"
        )
    return out


def workers_table(workloads: dict[str, Any], alt: str) -> list[str]:
    """s3tier with the other worker count, measured in the same repetitions."""
    out = [
        f"| id | figure | s3tier (main) | {alt} | nginx | main / nginx | alt / nginx |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in evaluate(workloads):
        fig: Figure = row["figure"]
        if not values(workloads, fig.workload, alt, fig.key) or not fig.kind.startswith("ratio"):
            continue
        alt_row = next(r for r in evaluate(workloads, alt) if r["figure"] == fig)
        out.append(
            f"| {fig.workload} | {label(fig, workloads)} "
            f"| {fmt(row['s3tier'], fig.scale, fig.digits)} "
            f"| {fmt(alt_row['s3tier'], fig.scale, fig.digits)} "
            f"| {fmt(row['nginx'], fig.scale, fig.digits)} "
            f"| {fmt(row['ratio'], 1, 2)} | {fmt(alt_row['ratio'], 1, 2)} |"
        )
    return out


def _max(vals: Sequence[float]) -> dict[str, float] | None:
    return {"median": max(vals), "min": max(vals), "max": max(vals)} if vals else None


def size_text(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"
