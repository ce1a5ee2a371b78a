"""PNG plots of a run (matplotlib, Agg backend): ratios against targets, and each server's
figures with their min–max over repetitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from report import SERVERS, Figure, label, spread, values

COLOURS = {"s3tier": "#2b6cb0", "nginx": "#2f855a"}


def ratios(rows: list[dict[str, Any]], workloads: dict[str, Any], path: Path) -> Path:
    """One bar per ratio figure (log scale, from the left edge), min–max whiskers, the target
    as a black tick."""
    shown = [r for r in rows if r["figure"].kind.startswith("ratio") and r["ratio"]]
    xmax = max([1.2] + [max(r["ratio"]["max"], r["figure"].threshold) for r in shown])
    xmin = min([0.5] + [min(r["ratio"]["min"], r["figure"].threshold) for r in shown]) / 1.5
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(shown) + 1.5))
    for i, row in enumerate(shown):
        f: Figure = row["figure"]
        med, low, high = (row["ratio"][k] for k in ("median", "min", "max"))
        colour = "#2f855a" if row["met"] else "#c53030"
        ax.barh(i, med - xmin, left=xmin, color=colour, alpha=0.8)
        ax.errorbar(med, i, xerr=[[med - low], [high - med]], fmt="none", ecolor="black", capsize=3)
        ax.plot([f.threshold, f.threshold], [i - 0.4, i + 0.4], color="black", linewidth=2)
        text = f"{med:.2f} ({f.target})"
        ax.text(max(high, f.threshold) * 1.08, i, text, va="center", fontsize=8)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels(
        [f"{r['figure'].workload} {label(r['figure'], workloads)}" for r in shown], fontsize=8
    )
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(xmin, xmax * 6)
    ax.set_xlabel("s3tier / nginx, log scale (median of per-repetition ratios; black tick: target)")
    ax.set_title("s3tier relative to nginx: green met, red not met")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def absolute(rows: list[dict[str, Any]], workloads: dict[str, Any], path: Path) -> Path:
    """One small panel per figure: both servers' medians with min–max whiskers."""
    shown = [r for r in rows if r["s3tier"] or r["nginx"]]
    cols = 4
    nrows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, shown, strict=False):
        f: Figure = row["figure"]
        servers = ("s3tier", f.peer)
        for j, server in enumerate(servers):
            s = spread(values(workloads, f.workload, server, f.key))
            if s is None:
                continue
            med, low, high = (s[k] / f.scale for k in ("median", "min", "max"))
            ax.bar(j, med, color=COLOURS.get(server, "grey"), alpha=0.85)
            ax.errorbar(
                j, med, yerr=[[med - low], [high - med]], fmt="none", ecolor="black", capsize=3
            )
        ax.set_xticks(range(len(servers)))
        ax.set_xticklabels(servers, fontsize=8)
        ax.set_title(f"{f.workload} {label(f, workloads)}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(
        "Each figure, both servers: median, whiskers min–max over repetitions", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency(workloads: dict[str, Any], path: Path) -> Path:
    """p50 and p99 latency per workload and server, log scale."""
    wids = [w for w in workloads if any(values(workloads, w, s, "p50_ms") for s in SERVERS)]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.2
    for j, server in enumerate(SERVERS):
        for k, (key, hatch) in enumerate((("p50_ms", ""), ("p99_ms", "//"))):
            meds = [
                (spread(values(workloads, w, server, key)) or {"median": 0})["median"] for w in wids
            ]
            x = [i + (2 * j + k - 1.5) * width for i in range(len(wids))]
            ax.bar(
                x,
                meds,
                width,
                color=COLOURS[server],
                hatch=hatch,
                alpha=0.85,
                label=f"{server} {key[:3]}",
            )
    ax.set_xticks(range(len(wids)))
    ax.set_xticklabels(wids)
    ax.set_yscale("log")
    ax.set_ylabel("ms (median over repetitions)")
    ax.set_title("Latency p50 / p99 (W6: cold TTFB of the large objects)")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(rows: list[dict[str, Any]], workloads: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        ratios(rows, workloads, folder / "ratios.png"),
        absolute(rows, workloads, folder / "figures.png"),
        latency(workloads, folder / "latency.png"),
    ]
