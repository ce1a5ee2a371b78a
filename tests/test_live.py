"""The live figures' pure parts (proxy/live.py): quantiles, the bounded history, the series."""

from __future__ import annotations

import math

import pytest

from proxy.live import (
    BOUNDS,
    GIB,
    TRACKED,
    History,
    Prices,
    _key,
    _le,
    quantile,
    series,
    summarize,
)


def test_quantile_interpolates_inside_the_bucket_as_histogram_quantile_does() -> None:
    bounds = (0.001, 0.002, 0.004, math.inf)
    # 10 observations: 4 under 1 ms, 4 in 1-2 ms, 2 in 2-4 ms.
    counts = (4, 8, 10, 10)
    assert quantile(0.5, counts, bounds) == pytest.approx(0.001 + 0.001 * (1 / 4))
    assert quantile(0.99, counts, bounds) == pytest.approx(0.002 + 0.002 * (1.9 / 2))
    assert quantile(0.2, counts, bounds) == pytest.approx(0.0005)
    assert quantile(0.5, (0, 0, 0, 0), bounds) is None
    assert quantile(0.5, (0, 0, 0, 3), bounds) == 0.004  # open-ended: its lower bound


def test_history_keeps_a_bounded_number_of_fixed_size_snapshots() -> None:
    history = History(keep=5)
    for second in range(50):
        history.add(float(second), {'unrelated{key="x"}': 1.0, TRACKED[0]: float(second)})
    points = history.points()
    assert len(points) == 5 and [t for t, _ in points] == [45.0, 46.0, 47.0, 48.0, 49.0]
    assert all(len(values) == len(TRACKED) for _, values in points)


def test_series_turn_counter_deltas_into_rates_ratios_and_latency() -> None:
    hit, miss = (
        _key("s3tier_cache_results_total", result="hit_ram"),
        _key("s3tier_cache_results_total", result="miss"),
    )
    ram = _key("s3tier_served_bytes_total", tier="ram")
    upstream = _key("s3tier_served_bytes_total", tier="upstream")
    buckets = {_key("s3tier_response_duration_seconds_bucket", le=_le(b), result="hit_ram"): 0.0
               for b in BOUNDS}  # fmt: skip
    history = History()
    history.add(10.0, {hit: 0, miss: 0, ram: 0, upstream: 0, **buckets})
    later = dict(buckets)
    for b in BOUNDS:  # 6 hits, all under 1 ms
        if b >= 0.001:
            later[_key("s3tier_response_duration_seconds_bucket", le=_le(b), result="hit_ram")] = 6
    history.add(12.0, {hit: 6, miss: 2, ram: 6 * GIB, upstream: 2 * GIB, **later})
    drawn = series(history.points(), Prices(get_per_1000=1.0, egress_per_gib=1.0))
    assert drawn["t"] == [12.0]
    assert drawn["rps"]["hit_ram"] == [3.0] and drawn["rps"]["miss"] == [1.0]  # type: ignore[index]
    assert drawn["hit_ratio"] == [0.75] and drawn["byte_hit_ratio"] == [0.75]
    assert drawn["p50_ms"]["hit_ram"][0] == pytest.approx(0.75)  # type: ignore[index]
    assert drawn["p50_ms"]["miss"] == [None]  # type: ignore[index]
    # 6 requests and 6 GiB saved in 2 s: (0.006 + 6) USD per 2 s, per hour.
    assert drawn["saved_usd_per_hour"] == [pytest.approx((0.006 + 6) * 1800)]


def test_summarize_prices_the_answers_and_bytes_the_cache_saved() -> None:
    totals = {
        _key("s3tier_cache_results_total", result="hit_ram"): 1000.0,
        _key("s3tier_cache_results_total", result="hit_peer"): 1000.0,
        _key("s3tier_cache_results_total", result="revalidated"): 500.0,  # asked the upstream
        _key("s3tier_cache_results_total", result="miss"): 500.0,
        _key("s3tier_served_bytes_total", tier="disk"): GIB,
        _key("s3tier_served_bytes_total", tier="upstream"): GIB,
    }
    stats = summarize(totals, uptime_s=1800)
    saved = stats["savings"]
    assert stats["hit_ratio"] == round(2500 / 3000, 4) and stats["byte_hit_ratio"] == 0.5
    assert saved["requests_avoided"] == 2000 and saved["bytes_avoided"] == GIB  # type: ignore[index]
    assert saved["usd"] == pytest.approx(2 * 0.0004 + 0.09)  # type: ignore[index]
    assert saved["usd_per_hour"] == pytest.approx(2 * (2 * 0.0004 + 0.09))  # type: ignore[index]
    assert "AWS" in saved["price_source"]  # type: ignore[index]
