"""What the operator sees: the figures of /_s3tier/stats and of the live page at /_s3tier/.

Everything here is computed from the summed metric samples (`Metrics.totals()`), so every worker
shows the same figures. The page's sparklines need the last minutes too, and the server keeps
them itself (`History`): one snapshot a second of the few counters the page draws, in a ring of
fixed size, with no key or per-request labels, so its memory is bounded whatever the traffic.

Savings are what the cache spared the upstream: client answers that needed no upstream request
(hits from RAM, disk or a fleet member, and stale answers), and the object bytes served from the
tiers. They are priced with `Prices` (defaults from AWS's public S3 price list).
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tiering.blockloads import SOURCE_NAMES
from tiering.metrics import ERROR_KINDS, LATENCY_BUCKETS, RESULTS, UPSTREAM_OPERATIONS

GIB = float(1 << 30)
HITS = ("hit_ram", "hit_disk", "hit_peer", "revalidated", "stale")
AVOIDED = ("hit_ram", "hit_disk", "hit_peer", "stale")  # answered without an upstream request
TIMED = ("hit_ram", "hit_disk", "hit_peer", "miss", "revalidated")  # latency by result
TIERS = tuple(SOURCE_NAMES.values())  # ram, disk, peer, upstream
CACHE_TIERS = ("ram", "disk", "peer")
ERROR_KINDS_TOTAL = "s3tier_upstream_errors_total"
PRICE_SOURCE = (
    "AWS S3 price list, us-east-1, S3 Standard: GET $0.0004 per 1,000 requests; "
    "data transfer out to the internet $0.09 per GB (first 10 TB a month)"
)


@dataclass(frozen=True, slots=True)
class Prices:
    """What the upstream charges, in USD."""

    get_per_1000: float = 0.0004
    egress_per_gib: float = 0.09

    def of(self, requests: float, bytes_: float) -> float:
        return requests / 1000 * self.get_per_1000 + bytes_ / GIB * self.egress_per_gib


def _key(name: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


BOUNDS = (*LATENCY_BUCKETS, math.inf)
# The counters a snapshot keeps, in a fixed order: a snapshot is then one array of floats.
TRACKED: tuple[str, ...] = (
    *(_key("s3tier_cache_results_total", result=r) for r in RESULTS if r != "none"),
    *(_key("s3tier_served_bytes_total", tier=t) for t in TIERS),
    *(_key("s3tier_upstream_requests_total", operation=op) for op in UPSTREAM_OPERATIONS),
    *(_key(ERROR_KINDS_TOTAL, kind=k) for k in ERROR_KINDS),
    *(
        _key("s3tier_response_duration_seconds_bucket", le=_le(b), result=r)
        for r in TIMED
        for b in BOUNDS
    ),
)
_INDEX = {name: i for i, name in enumerate(TRACKED)}


class History:
    """The last `keep` snapshots of the tracked counters, one per `add`."""

    def __init__(self, keep: int = 600) -> None:
        self._points: deque[tuple[float, array[float]]] = deque(maxlen=keep)

    def add(self, at: float, totals: Mapping[str, float]) -> None:
        self._points.append((at, array("d", (totals.get(name, 0.0) for name in TRACKED))))

    def __len__(self) -> int:
        return len(self._points)

    def points(self) -> list[tuple[float, array[float]]]:
        return list(self._points)


def quantile(q: float, counts: Iterable[float], bounds: Iterable[float] = BOUNDS) -> float | None:
    """The q-quantile of a histogram of cumulative bucket counts, interpolated inside its
    bucket as Prometheus's histogram_quantile does; None without observations."""
    pairs = list(zip(bounds, counts, strict=True))
    total = pairs[-1][1] if pairs else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in pairs:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # in the open-ended bucket: its lower bound, as Prometheus does
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


DEFAULT_PRICES = Prices()


def summarize(
    totals: Mapping[str, float], prices: Prices = DEFAULT_PRICES, uptime_s: float | None = None
) -> dict[str, object]:
    """The /stats document: results, ratios, bytes by tier, tier use and the savings."""

    def value(name: str, **labels: str) -> float:
        return totals.get(_key(name, **labels), 0.0)

    results = {r: value("s3tier_cache_results_total", result=r) for r in RESULTS if r != "none"}
    reads = sum(results.values()) - results["bypass"]
    hits = sum(results[r] for r in HITS)
    served = {t: value("s3tier_served_bytes_total", tier=t) for t in TIERS}
    from_cache = sum(served[t] for t in CACHE_TIERS)
    tiers = {
        t: {
            "used_bytes": value("s3tier_tier_usage_bytes", tier=t),
            "capacity_bytes": value("s3tier_tier_capacity_bytes", tier=t),
            "entries": value("s3tier_tier_entries", tier=t),
        }
        for t in ("ram", "disk")
    }
    avoided = sum(results[r] for r in AVOIDED)
    return {
        "cache_results": results,
        "hit_ratio": round(hits / reads, 4) if reads else None,
        "ram_hit_ratio": round(results["hit_ram"] / reads, 4) if reads else None,
        "byte_hit_ratio": round(from_cache / sum(served.values()), 4) if any(served.values())
        else None,
        "served_bytes": served,
        "upstream_bytes_saved": from_cache,
        "upstream_received_bytes": sum(
            value("s3tier_upstream_received_bytes_total", operation=op)
            for op in UPSTREAM_OPERATIONS
        ),
        "upstream_requests": sum(
            value("s3tier_upstream_requests_total", operation=op) for op in UPSTREAM_OPERATIONS
        ),
        "upstream_errors": sum(
            v for k, v in totals.items() if k.startswith(ERROR_KINDS_TOTAL + "{")
        ),
        "in_flight": value("s3tier_requests_in_flight"),
        "prefetch_bytes": {
            o: value("s3tier_prefetch_bytes_total", outcome=o) for o in ("issued", "used", "wasted")
        },
        "tiers": tiers,
        "savings": savings(avoided, from_cache, prices, uptime_s),
    }  # fmt: skip


def savings(
    requests: float, bytes_: float, prices: Prices, uptime_s: float | None
) -> dict[str, object]:
    usd = prices.of(requests, bytes_)
    per_hour = usd / uptime_s * 3600 if uptime_s else None
    return {
        "requests_avoided": requests,
        "bytes_avoided": bytes_,
        "usd": round(usd, 6),
        "usd_per_hour": round(per_hour, 6) if per_hour is not None else None,
        "prices": {
            "get_per_1000_usd": prices.get_per_1000,
            "egress_per_gib_usd": prices.egress_per_gib,
        },
        "price_source": PRICE_SOURCE if prices == DEFAULT_PRICES else "configured",
    }


def series(points: list[tuple[float, array[float]]], prices: Prices) -> dict[str, object]:
    """Per-interval figures between consecutive snapshots, for the page's sparklines: requests
    per second by result, hit ratios, bytes per second by tier, upstream requests and errors
    per second, p50/p99 by result (None where an interval saw no such answer), USD saved per
    hour."""
    t: list[float] = []
    rps: dict[str, list[float]] = {r: [] for r in RESULTS if r != "none"}
    bps: dict[str, list[float]] = {tier: [] for tier in TIERS}
    hit_ratio: list[float | None] = []
    byte_ratio: list[float | None] = []
    upstream_rps: list[float] = []
    errors_ps: list[float] = []
    p50: dict[str, list[float | None]] = {r: [] for r in TIMED}
    p99: dict[str, list[float | None]] = {r: [] for r in TIMED}
    saved_per_hour: list[float] = []
    for (t0, a), (t1, b) in itertools.pairwise(points):
        span = t1 - t0
        if span <= 0:
            continue

        def delta(name: str, a: array[float] = a, b: array[float] = b) -> float:
            i = _INDEX[name]
            return max(b[i] - a[i], 0.0)

        t.append(t1)
        counts = {r: delta(_key("s3tier_cache_results_total", result=r)) for r in rps}
        for r, n in counts.items():
            rps[r].append(n / span)
        reads = sum(counts.values()) - counts["bypass"]
        hit_ratio.append(sum(counts[r] for r in HITS) / reads if reads else None)
        sent = {tier: delta(_key("s3tier_served_bytes_total", tier=tier)) for tier in TIERS}
        for tier, n in sent.items():
            bps[tier].append(n / span)
        total_sent = sum(sent.values())
        cached = sum(sent[x] for x in CACHE_TIERS)
        byte_ratio.append(cached / total_sent if total_sent else None)
        upstream_rps.append(
            sum(delta(_key("s3tier_upstream_requests_total", operation=op))
                for op in UPSTREAM_OPERATIONS) / span
        )  # fmt: skip
        errors_ps.append(
            sum(delta(name) for name in TRACKED if name.startswith(ERROR_KINDS_TOTAL)) / span
        )
        for r in TIMED:
            buckets = [
                delta(_key("s3tier_response_duration_seconds_bucket", le=_le(x), result=r))
                for x in BOUNDS
            ]
            p50[r].append(_ms(quantile(0.5, buckets)))
            p99[r].append(_ms(quantile(0.99, buckets)))
        avoided = sum(counts[r] for r in AVOIDED)
        saved_per_hour.append(prices.of(avoided, cached) / span * 3600)
    return {
        "t": t, "rps": rps, "hit_ratio": hit_ratio, "byte_hit_ratio": byte_ratio,
        "served_bps": bps, "upstream_rps": upstream_rps, "upstream_errors_ps": errors_ps,
        "p50_ms": p50, "p99_ms": p99, "saved_usd_per_hour": saved_per_hour,
    }  # fmt: skip


def window_latency(points: list[tuple[float, array[float]]]) -> dict[str, dict[str, float | None]]:
    """p50 and p99 in ms by result over the whole history window."""
    if len(points) < 2:
        return {r: {"p50_ms": None, "p99_ms": None} for r in TIMED}
    (_, a), (_, b) = points[0], points[-1]
    out = {}
    for r in TIMED:
        buckets = []
        for x in BOUNDS:
            i = _INDEX[_key("s3tier_response_duration_seconds_bucket", le=_le(x), result=r)]
            buckets.append(max(b[i] - a[i], 0.0))
        out[r] = {"p50_ms": _ms(quantile(0.5, buckets)), "p99_ms": _ms(quantile(0.99, buckets))}
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
