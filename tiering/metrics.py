"""Every Prometheus metric s3tier exposes, in one place. Labels are bounded sets, never a key.

The request path touches only what it must (a counter, a histogram, the in-flight gauge, each
child bound once). Everything the components already count for themselves (coalesced
waiters, prefetch outcomes, admissions, evictions, tier fill) is copied in by `sync`, as
deltas, once a second and at each scrape: no metric work per block on the hot path.

With several workers the metrics live in prometheus_client's multiprocess mode (a shared folder
of memory-mapped files) and are summed across workers at scrape time.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CACHE_TIERS = ("ram", "disk")
RESULTS = ("hit_ram", "hit_disk", "hit_peer", "miss", "revalidated", "stale", "bypass", "none")
PEER_OUTCOMES = ("hit", "miss", "failed")
OPERATIONS = (
    "get_object", "head_object", "put_object", "delete_object", "list", "multipart", "other",
)  # fmt: skip
UPSTREAM_OPERATIONS = ("get_block", "head", "list", "put", "forward")
ERROR_KINDS = ("unavailable", "broken", "status_5xx", "slow_down")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
SYNC_INTERVAL_S = 1.0


@dataclass(slots=True)
class Sample:
    """What one worker's components have counted since start (monotonic) or hold now."""

    coalesced: int = 0
    fast_answers: int = 0  # hits answered from the protocol, before any ASGI request
    file_bytes: int = 0  # disk bytes handed to the server as open files (zero-copy)
    prefetch: dict[str, int] = field(default_factory=dict)  # issued / used / wasted bytes
    admissions: dict[str, int] = field(default_factory=dict)  # by tier
    evictions: dict[str, int] = field(default_factory=dict)
    usage_bytes: dict[str, float] = field(default_factory=dict)  # now, by tier
    entries: dict[str, float] = field(default_factory=dict)
    capacity_bytes: dict[str, float] = field(default_factory=dict)
    served_bytes: dict[str, int] = field(default_factory=dict)  # by tier
    peer_served_bytes: dict[str, int] = field(default_factory=dict)  # to other members, by tier
    disk_errors: dict[str, int] = field(default_factory=dict)  # by kind: io, corrupt
    fleet_members: int = 0  # in this node's view of the fleet (0: no fleet)
    circuits_open: int = 0  # members skipped now because they failed


class HitTally:
    """Answers of the protocol's fast path, counted as plain ints and copied into the metrics by
    `Metrics.sync`: a Prometheus increment takes a lock (and, with several workers, writes a
    memory-mapped file), which cost more than the rest of a RAM hit's bookkeeping together."""

    __slots__ = ("answers", "buckets", "seconds")

    def __init__(self) -> None:
        self.answers: dict[str, int] = {"get_object": 0, "head_object": 0}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0

    def add(self, operation: str, seconds: float) -> None:
        self.answers[operation] += 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds


class Metrics:
    """The metric objects, on an injected registry (tests build a fresh one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "s3tier_requests", "Requests by S3 operation and status class",
            ["operation", "status_class"], registry=r,
        )  # fmt: skip
        self.cache_results = Counter(
            "s3tier_cache_results",
            "GET/HEAD object answers by cache result",
            ["result"],
            registry=r,
        )
        self.served_bytes = Counter(
            "s3tier_served_bytes", "Object bytes sent to clients, by the tier they came from",
            ["tier"], registry=r,
        )  # fmt: skip
        self.upstream_requests = Counter(
            "s3tier_upstream_requests", "Requests to the upstream", ["operation"], registry=r
        )
        self.upstream_bytes = Counter(
            "s3tier_upstream_received_bytes", "Body bytes received from the upstream",
            ["operation"], registry=r,
        )  # fmt: skip
        self.upstream_duration = Histogram(
            "s3tier_upstream_request_duration_seconds", "Upstream request time, whole body",
            ["operation"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "s3tier_upstream_errors", "Upstream failures by kind", ["kind"], registry=r
        )
        self.coalesced = Counter(
            "s3tier_coalesced_waiters", "Requests that joined a fetch already under way",
            registry=r,
        )  # fmt: skip
        self.fast_answers = Counter(
            "s3tier_fast_path_answers", "RAM hits answered before any ASGI request existed",
            registry=r,
        )  # fmt: skip
        self.file_bytes = Counter(
            "s3tier_disk_file_bytes",
            "Disk-tier bytes handed to the server as open files, sent by sendfile",
            registry=r,
        )
        self.prefetch_bytes = Counter(
            "s3tier_prefetch_bytes", "Prefetched bytes: issued, then used or wasted",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.evictions = Counter("s3tier_evictions", "Blocks evicted", ["tier"], registry=r)
        self.tier_errors = Counter(
            "s3tier_tier_errors", "Tier failures served as misses: io errors, corrupt blocks",
            ["tier", "kind"], registry=r,
        )  # fmt: skip
        self.admissions = Counter("s3tier_admissions", "Blocks admitted", ["tier"], registry=r)
        self.tier_usage = Gauge(
            "s3tier_tier_usage_bytes", "Bytes held by each tier", ["tier"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.tier_entries = Gauge(
            "s3tier_tier_entries", "Blocks held by each tier", ["tier"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.tier_capacity = Gauge(
            "s3tier_tier_capacity_bytes", "Capacity of each tier", ["tier"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.in_flight = Gauge(
            "s3tier_requests_in_flight", "Requests being answered", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.unexpected_errors = Counter(
            "s3tier_unexpected_errors",
            "Requests ended by an error nothing expected (a bug): answered InternalError, or cut",
            ["operation"], registry=r,
        )  # fmt: skip
        self.response_duration = Histogram(
            "s3tier_response_duration_seconds", "Time to answer, by cache result", ["result"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.peer_requests = Counter(
            "s3tier_peer_requests",
            "Block requests to their owning fleet member, by outcome: hit (from its tiers), "
            "miss (it filled from the upstream), failed (the block came from the upstream)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.peer_duration = Histogram(
            "s3tier_peer_request_duration_seconds", "Block requests to their owner, whole body",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.peer_served = Counter(
            "s3tier_peer_served",
            "Block requests this node answered for other members, by cache result (kept out "
            "of the client counts, so a fleet's sum counts each client answer once)",
            ["result"], registry=r,
        )  # fmt: skip
        self.peer_served_bytes = Counter(
            "s3tier_peer_served_bytes",
            "Object bytes this node sent to other members for their clients, by the tier they "
            "came from (kept out of s3tier_served_bytes for the same reason)",
            ["tier"], registry=r,
        )  # fmt: skip
        self.fleet_members = Gauge(
            "s3tier_fleet_members", "Members in this node's view of the fleet", registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.circuits_open = Gauge(
            "s3tier_peer_circuits_open", "Members skipped now because they failed lately",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.price_get = Gauge(
            "s3tier_price_get_per_1000_usd",
            "What the upstream charges per 1,000 GET requests (--price-get-per-1000)",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.price_egress = Gauge(
            "s3tier_price_egress_per_gib_usd",
            "What a GiB from the upstream costs (--price-egress-per-gib)",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self._bind()
        self._last = Sample()
        self.hits = HitTally()

    def _bind(self) -> None:
        # Label lookups cost more than the increments: bind every child once.
        self.request_children = {
            (op, sc): self.requests.labels(op, sc) for op in OPERATIONS for sc in STATUS_CLASSES
        }
        self.result_children = {res: self.cache_results.labels(res) for res in RESULTS}
        self.duration_children = {res: self.response_duration.labels(res) for res in RESULTS}
        self.unexpected_children = {op: self.unexpected_errors.labels(op) for op in OPERATIONS}
        for kind in ERROR_KINDS:
            self.upstream_errors.labels(kind)
        for op in UPSTREAM_OPERATIONS:
            self.upstream_requests.labels(op)
            self.upstream_bytes.labels(op)
            self.upstream_duration.labels(op)
        for outcome in ("issued", "used", "wasted"):
            self.prefetch_bytes.labels(outcome)
        # Every tier's series exists from the start, so a rate over it is a zero, not nothing
        # (a dashboard panel showing no data looks broken), and a first eviction counts in full.
        for tier in CACHE_TIERS:
            self.evictions.labels(tier)
            self.admissions.labels(tier)
        for tier in (*CACHE_TIERS, "peer", "upstream"):
            self.served_bytes.labels(tier)
            self.peer_served_bytes.labels(tier)
        self.peer_children = {o: self.peer_requests.labels(o) for o in PEER_OUTCOMES}
        self.peer_served_children = {res: self.peer_served.labels(res) for res in RESULTS}

    def request(self, operation: str, status: int, result: str, seconds: float) -> None:
        status_class = STATUS_CLASSES[min(max(status // 100, 1), 5) - 1]
        self.request_children[(operation, status_class)].inc()
        if result != "none":
            self.result_children[result].inc()
        self.duration_children[result].observe(seconds)

    def served_peer(self, result: str) -> None:
        self.peer_served_children[result].inc()

    def peer(self, outcome: str, seconds: float) -> None:
        self.peer_children[outcome].inc()
        self.peer_duration.observe(seconds)

    def unexpected(self, operation: str) -> None:
        self.unexpected_children[operation].inc()

    def upstream(self, operation: str, received: int, seconds: float) -> None:
        self.upstream_requests.labels(operation).inc()
        self.upstream_bytes.labels(operation).inc(received)
        self.upstream_duration.labels(operation).observe(seconds)

    def upstream_error(self, kind: str) -> None:
        self.upstream_errors.labels(kind).inc()

    def sync(self, now: Sample) -> None:
        """Copy the components' own counts in, as deltas since the last sync."""
        last = self._last
        self.coalesced.inc(max(now.coalesced - last.coalesced, 0))
        self.fast_answers.inc(max(now.fast_answers - last.fast_answers, 0))
        self.file_bytes.inc(max(now.file_bytes - last.file_bytes, 0))
        _add(self.prefetch_bytes, now.prefetch, last.prefetch)
        _add(self.admissions, now.admissions, last.admissions)
        _add(self.evictions, now.evictions, last.evictions)
        _add(self.served_bytes, now.served_bytes, last.served_bytes)
        _add(self.peer_served_bytes, now.peer_served_bytes, last.peer_served_bytes)
        for kind, value in now.disk_errors.items():
            delta = value - last.disk_errors.get(kind, 0)
            if delta > 0:
                self.tier_errors.labels("disk", kind).inc(delta)
        _set(self.tier_usage, now.usage_bytes)
        _set(self.tier_entries, now.entries)
        _set(self.tier_capacity, now.capacity_bytes)
        self.fleet_members.set(now.fleet_members)
        self.circuits_open.set(now.circuits_open)
        self._last = now
        self._drain(self.hits)

    def _drain(self, tally: HitTally) -> None:
        """Add the tally's answers as if each had gone through `request`, and zero it."""
        total = 0
        for operation, count in tally.answers.items():
            if count:
                self.request_children[(operation, "2xx")].inc(count)
                tally.answers[operation] = 0
                total += count
        if not total:
            return
        self.result_children["hit_ram"].inc(total)
        # prometheus_client has no bulk observe; these are the values `observe` increments
        # (a test checks the result equals observing each, should the library change).
        child = self.duration_children["hit_ram"]
        child._sum.inc(tally.seconds)
        for index, count in enumerate(tally.buckets):
            if count:
                child._buckets[index].inc(count)
                tally.buckets[index] = 0
        tally.seconds = 0.0

    def exposition(self) -> bytes:
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        gathered = CollectorRegistry()
        multiprocess.MultiProcessCollector(gathered)  # type: ignore[no-untyped-call]
        return generate_latest(gathered)

    def totals(self) -> dict[str, float]:
        """Every sample summed across workers, keyed like `name{label="v"}`, for /stats."""
        registry = self.registry
        if multiprocess_dir() is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        out: dict[str, float] = {}
        for family in registry.collect():
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                name = f"{sample.name}{{{labels}}}" if labels else sample.name
                out[name] = out.get(name, 0.0) + sample.value
        return out


def _add(counter: Counter, now: dict[str, int], last: dict[str, int]) -> None:
    for label, value in now.items():
        delta = value - last.get(label, 0)
        if delta > 0:
            counter.labels(label).inc(delta)


def _set(gauge: Gauge, values: dict[str, float]) -> None:
    for label, value in values.items():
        gauge.labels(label).set(value)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def operation_of(method: str, bucket: str, key: str, query: Iterable[str]) -> str:
    """A bounded name for what a request does (the requests_total label). Pure."""
    names = set(query)
    if not bucket:
        return "list" if method == "GET" else "other"
    if not key:
        return "list" if method == "GET" and not names - {"list-type", "prefix", "delimiter",
                                                          "continuation-token", "start-after",
                                                          "max-keys", "marker", "encoding-type",
                                                          "fetch-owner"} else "other"  # fmt: skip
    if names & {"uploads", "uploadId", "partNumber"} and method != "GET":
        return "multipart"
    return _OBJECT_OPERATIONS.get(method, "other")


_OBJECT_OPERATIONS = {
    "GET": "get_object",
    "HEAD": "head_object",
    "PUT": "put_object",
    "DELETE": "delete_object",
}

Syncer = Callable[[], Sample]
