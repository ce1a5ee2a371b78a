"""The fast path's plain-int tally reaches Prometheus as the same samples per-request metric
calls would have made (prometheus_client has no bulk observe, so the tally writes the values
`observe` writes: this is the test that notices if the library changes them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tiering.metrics import LATENCY_BUCKETS, Metrics, Sample

DURATIONS = (0.0, 0.00001, 0.0005, 0.0007, 0.003, 0.2, 10.0, 11.0)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_drained_tally_equals_one_request_call_per_answer() -> None:
    direct, tallied = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    for index, seconds in enumerate(DURATIONS):
        operation = "get_object" if index % 3 else "head_object"
        direct.request(operation, 200, "hit_ram", seconds)
        tallied.hits.add(operation, seconds)
    tallied.sync(Sample())
    assert samples(tallied) == samples(direct)
    assert samples(tallied)[("s3tier_cache_results_total", (("result", "hit_ram"),))] == 8


def test_a_tally_is_counted_once_however_often_it_is_synced() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.hits.add("get_object", LATENCY_BUCKETS[0])
    metrics.sync(Sample())
    metrics.sync(Sample())
    got = metrics.registry.get_sample_value(
        "s3tier_response_duration_seconds_count", {"result": "hit_ram"}
    )
    assert got == 1
    assert metrics.hits.answers == {"get_object": 0, "head_object": 0}
