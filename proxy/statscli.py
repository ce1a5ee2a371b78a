"""`s3tier stats`: the live page's figures in the terminal, once or every few seconds."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from proxy.warmcli import admin_call

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _bytes(n: float) -> str:
    unit = 0
    while abs(n) >= 1024 and unit < len(UNITS) - 1:
        n, unit = n / 1024, unit + 1
    return f"{n:.0f} {UNITS[unit]}" if unit == 0 else f"{n:.1f} {UNITS[unit]}"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.1%}"


def render(live: dict[str, Any]) -> str:
    """The figures of /_s3tier/live as lines of text."""
    s = live["stats"]
    saved = s["savings"]
    results = ", ".join(f"{k} {v:.0f}" for k, v in s["cache_results"].items() if v)
    served = ", ".join(f"{k} {_bytes(v)}" for k, v in s["served_bytes"].items())
    lines = [
        f"up {live['uptime_s']:.0f} s",
        f"hit ratio       {_ratio(s['hit_ratio'])} of requests, "
        f"{_ratio(s['byte_hit_ratio'])} of bytes",
        f"cache results   {results or 'none yet'}",
        f"served          {served}",
        f"saved           ${saved['usd']:.6f} since start"
        + (f", ${saved['usd_per_hour']:.6f} per hour" if saved["usd_per_hour"] is not None else "")
        + f": {saved['requests_avoided']:.0f} upstream requests and "
        f"{_bytes(saved['bytes_avoided'])} avoided",
        f"upstream        {s['upstream_requests']:.0f} requests, {s['upstream_errors']:.0f} errors,"
        f" {_bytes(s['upstream_received_bytes'])} received",
        f"in flight       {s['in_flight']:.0f}",
    ]
    for name, tier in s["tiers"].items():
        used, capacity = tier["used_bytes"], tier["capacity_bytes"]
        share = f" ({used / capacity:.1%})" if capacity else ""
        lines.append(f"{name + ' tier':<16}{_bytes(used)} of {_bytes(capacity)}{share}")
    timed = [
        f"{name} p50 {q['p50_ms']:.2f} ms p99 {q['p99_ms']:.2f} ms"
        for name, q in live["latency"].items()
        if q["p50_ms"] is not None
    ]
    if timed:
        lines.append(f"latency         {'; '.join(timed)} (last {live['window_s']:.0f} s)")
    return "\n".join(lines)


def stats(url: str, token: str | None, watch_s: float | None, out: IO[str] = sys.stdout) -> int:
    """Print the figures once, or every `watch_s` seconds until interrupted."""
    endpoint = url.rstrip("/") + "/_s3tier/live"
    try:
        while True:
            print(render(admin_call("GET", endpoint, token)), file=out, flush=True)
            if watch_s is None:
                return 0
            time.sleep(watch_s)
            print(file=out)
    except KeyboardInterrupt:
        return 0
