"""The Grafana dashboard proven against a real Prometheus (issue 14, part 3).

Debian's `prometheus` scrapes real s3tier processes the way the chart's ServiceMonitor makes
the Prometheus Operator scrape them (its path and port, and the target labels the operator
gives: `namespace`, `job` = the Service's name, `service`, `endpoint`), once for one node
with one worker and once for a fleet of two nodes with two workers each. Scripted traffic runs
between scrapes; then every PromQL expression of every panel of the dashboard, as the chart's
dashboard ConfigMap ships it, is evaluated through Prometheus's HTTP API with the dashboard's
own variables resolved by their own `label_values` queries: each returns a series, and the
hit-ratio, bytes and savings panels agree with the X-Cache-Status and body sizes the clients saw.
The scrape interval is 1 s here (the chart's default is 30 s) so the test takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import S3TierServer, free_port
from tests.test_deploy_files import CHART, DASHBOARD, TEMPLATES
from tests.test_fleet_e2e import HOSTS, SECRET, port_free_on_every_host
from tests.upstream_shim import UpstreamShim

KiB, GiB = 1 << 10, 1 << 30
NAMESPACE = "s3tier-test"  # the Release's namespace
SERVICE = "s3tier"  # the chart's fullname for a release named "s3tier": the Service, the job
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RESULT_OF = {
    "HIT-RAM": "hit_ram", "HIT-DISK": "hit_disk", "HIT-PEER": "hit_peer", "MISS": "miss",
    "REVALIDATED": "revalidated", "STALE": "stale",
}  # fmt: skip
CACHED = ("hit_ram", "hit_disk", "hit_peer", "revalidated", "stale")
TIER_OF = {"HIT-RAM": "ram", "HIT-DISK": "disk", "HIT-PEER": "peer", "MISS": "upstream"}
# Panels whose series must also carry data (not only exist) once the traffic has run; the rest
# may be all zeros (no upstream error happened, a single node has no peers).
BUSY = (
    "Requests per second", "Hit ratio by tier", "Bytes served by tier vs upstream bytes",
    "Response latency p50 by cache result", "Client requests by operation and status class",
    "Upstream requests by operation", "Upstream bytes received by operation",
    "Tier fill (% of capacity)", "Tier entries",
)  # fmt: skip
BY_TIER = 'sum by (tier) (s3tier_served_bytes_total{job="s3tier"})'
PEER_BYTES = 's3tier_peer_served_bytes_total{job="s3tier"}'
BUSY_IN_A_FLEET = (
    "Peer block requests by outcome",
    "Peer fetch latency p50 / p99",
    "Bytes sent to other members by tier",
)

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason="Debian's prometheus is not installed (.ci/run installs it)",
)


# --- what the chart says -----------------------------------------------------------------------


def servicemonitor_endpoint() -> tuple[str, str]:
    """The metrics path and the Service port name the ServiceMonitor scrapes."""
    text = (TEMPLATES / "servicemonitor.yaml").read_text(encoding="utf-8")
    (path,) = re.findall(r"^\s+path: (\S+)$", text, re.MULTILINE)
    (port,) = re.findall(r"^\s+- port: (\S+)$", text, re.MULTILINE)
    return path, port


def shipped_dashboard() -> dict[str, Any]:
    """The dashboard as the ConfigMap carries it: the file `.Files.Get` names, put under its
    data key as `nindent 4` puts it, read back as YAML."""
    text = (TEMPLATES / "dashboard-configmap.yaml").read_text(encoding="utf-8")
    key, name = re.findall(r'^  (\S+): \|-\n\s+\{\{- \.Files\.Get "([^"]+)" \| nindent 4 \}\}',
                           text, re.MULTILINE)[0]  # fmt: skip
    body = (CHART / name).read_text(encoding="utf-8")
    rendered = f"data:\n  {key}: |-" + "".join(f"\n    {line}" for line in body.splitlines())
    data = yaml.safe_load(rendered)["data"][key]
    shipped: dict[str, Any] = json.loads(data)
    assert shipped == json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return shipped


@dataclass(frozen=True)
class Query:
    panel: str
    kind: str  # the panel type: stat panels are one value over the range, the rest series
    expr: str


def panel_queries(board: dict[str, Any]) -> list[Query]:
    return [
        Query(panel["title"], panel["type"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


# --- the processes ---------------------------------------------------------------------------


class Prometheus:
    """Debian's prometheus on a loopback port, scraping `targets` as the operator would."""

    def __init__(self, workdir: Path, targets: list[str], metrics_path: str, port: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                # The operator's job name for a ServiceMonitor's first endpoint; the `job`
                # label it relabels to the Service's name, as below.
                "job_name": f"serviceMonitor/{NAMESPACE}/{SERVICE}/0",
                "metrics_path": metrics_path,
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [{
                    "targets": targets,
                    "labels": {"namespace": NAMESPACE, "service": SERVICE, "endpoint": port},
                }],
                "relabel_configs": [{"target_label": "job", "replacement": SERVICE}],
            }],
        }  # fmt: skip
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.argv = [
            PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: Any) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def value(self, expr: str) -> float | None:
        found = self.api("query", query=expr)["result"]
        return float(found[0]["value"][1]) if found else None

    def wait_for(
        self, expr: str, want: float, timeout_s: float = 20, at_least: bool = False
    ) -> None:
        """Until `expr` evaluates to `want` (or, `at_least`, to `want` or more): the scrapes
        have caught up with the traffic."""
        deadline, got = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            got = self.value(expr)
            if got is not None and (got >= want if at_least else abs(got - want) < 1e-9):
                return
            time.sleep(0.25)
        raise AssertionError(f"{expr} = {got}, expected {'at least ' if at_least else ''}{want}")


@contextlib.contextmanager
def running(tmp_path: Path, shim: UpstreamShim, nodes: int, workers: int) -> Iterator[Any]:
    """s3tier (`nodes` members of one fleet, or one node alone) and a Prometheus scraping it."""
    metrics_path, port_name = servicemonitor_endpoint()
    flags = ["--workers", str(workers), "--freshness", "immutable"]
    port = port_free_on_every_host() if nodes > 1 else free_port()
    urls = [f"http://{host}:{port}" for host in HOSTS[:nodes]]
    if nodes > 1:
        flags += ["--peers", ",".join(urls), "--peer-secret", SECRET]
    servers = [
        S3TierServer(tmp_path / f"node-{i}", shim.url, *flags, host=host, port=port)
        for i, host in enumerate(HOSTS[:nodes])
    ]
    targets = [f"{host}:{port}" for host in HOSTS[:nodes]]
    (tmp_path / "prometheus").mkdir()
    prometheus = Prometheus(tmp_path / "prometheus", targets, metrics_path, port_name)
    try:
        for server in servers:
            (server.disk_dir.parent).mkdir(parents=True, exist_ok=True)
            server.start()
        prometheus.start()
        yield servers, prometheus
    finally:
        prometheus.stop()
        for server in servers:
            server.stop()


# --- the traffic -------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the clients saw: answers by X-Cache-Status, and body bytes by the tier it names."""

    results: Counter[str] = field(default_factory=Counter)
    tier_bytes: Counter[str] = field(default_factory=Counter)

    def add(self, answer: requests.Response) -> None:
        status = answer.headers["x-cache-status"]
        self.results[RESULT_OF[status]] += 1
        self.tier_bytes[TIER_OF.get(status, "ram")] += len(answer.content)

    @property
    def requests(self) -> int:
        return sum(self.results.values())

    @property
    def hits(self) -> int:
        return sum(self.results[r] for r in CACHED)


def drive(urls: list[str], bucket: str, objects: dict[str, bytes]) -> Seen:
    """Cold reads, then repeated whole and ranged reads, spread over the nodes."""
    seen = Seen()
    with requests.Session() as session:
        for round_ in range(4):
            for i, (key, data) in enumerate(objects.items()):
                url = f"{urls[(i + round_) % len(urls)]}/{bucket}/{key}"
                answer = session.get(url, timeout=30)
                assert answer.status_code == 200 and answer.content == data
                seen.add(answer)
                if round_ >= 2:
                    ranged = session.get(url, headers={"Range": "bytes=100-4195"}, timeout=30)
                    assert ranged.status_code == 206 and ranged.content == data[100:4196]
                    seen.add(ranged)
    return seen


# --- the test ----------------------------------------------------------------------------------


def resolve_variables(board: dict[str, Any], prometheus: Prometheus) -> dict[str, str]:
    """Each query variable's values from its own `label_values(selector, label)` query, as
    Grafana asks Prometheus for them; the dashboard shows the first."""
    chosen: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert found, f"${variable['name']}: {query} is not a label_values query"
        selector, label = found.groups()
        match = {"match[]": substitute(selector, chosen)}
        values = prometheus.api(f"label/{label}/values", **match)
        assert values, f"${variable['name']}: {query} found nothing"
        chosen[variable["name"]] = values[0]
    return chosen


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr


@pytest.mark.parametrize(("nodes", "workers"), [(1, 1), (2, 2)], ids=["one-node", "fleet-2x2"])
def test_every_panel_of_the_dashboard_returns_data_that_agrees_with_the_traffic(
    tmp_path: Path, shim: UpstreamShim, direct: Any, bucket: str, nodes: int, workers: int
) -> None:
    board = shipped_dashboard()
    objects = {f"obj-{i}": bytes([i]) * (96 * KiB + i) for i in range(12)}
    for key, data in objects.items():
        direct.put_object(Bucket=bucket, Key=key, Body=data)
    with running(tmp_path, shim, nodes, workers) as (servers, prometheus):
        # Every target scraped before any traffic, so each counter's first sample is its zero.
        prometheus.wait_for('count(up{job="s3tier"} == 1)', nodes)
        prometheus.wait_for('min(count_over_time(up{job="s3tier"}[1m]))', 2, timeout_s=10)
        begun = time.time()
        seen = drive([s.url for s in servers], bucket, objects)
        total = 'sum(s3tier_cache_results_total{job="s3tier", result!="bypass"})'
        prometheus.wait_for(total, seen.requests)
        # The byte counters reach the metrics at a worker's sync (each second, and at a scrape
        # of that worker): a worker that served only peers and was not scraped since syncs
        # later than the request counts above, which every answer adds at once.
        served = f"sum({BY_TIER})"
        prometheus.wait_for(served, sum(seen.tier_bytes.values()))
        if nodes > 1:
            assert seen.results["hit_peer"] > 0, seen
            prometheus.wait_for(f"sum({PEER_BYTES})", 1, at_least=True)
        time.sleep(1.5)  # one more scrape of every target after the last change
        # Evaluated at a scrape, so increase() over the range extrapolates (almost) nothing
        # past the last sample: it adds up to one scrape interval's worth (see below).
        scraped = prometheus.api("query", query='timestamp(up{job="s3tier"})')["result"]
        ended = min(float(r["value"][1]) for r in scraped)

        variables = resolve_variables(board, prometheus)
        assert variables == {"namespace": NAMESPACE, "job": SERVICE}
        variables["__range"] = f"{int(ended - begun) + 3}s"
        variables["__rate_interval"] = "4s"  # Grafana's: 4 scrape intervals at least
        empty, idle, stats = [], [], {}
        for query in panel_queries(board):
            expr = substitute(query.expr, variables)
            if query.kind == "stat":
                result = prometheus.api("query", query=expr, time=ended)["result"]
                points = [float(r["value"][1]) for r in result]
                stats[query.panel] = points[0] if points else None
            else:
                result = prometheus.api(
                    "query_range", query=expr, start=begun - 2, end=ended, step="1s"
                )["result"]
                points = [float(v) for r in result for _, v in r["values"]]
            if not result:
                empty.append(f"{query.panel}: {expr}")
            busy = BUSY + (BUSY_IN_A_FLEET if nodes > 1 else ())
            if query.panel in busy and not any(p > 0 for p in points):
                idle.append(f"{query.panel}: {expr}")
        assert not empty, "panels without a series:\n" + "\n".join(empty)
        assert not idle, "panels without data after the traffic:\n" + "\n".join(idle)

        # The stat panels against what the clients saw.
        all_bytes = sum(seen.tier_bytes.values())
        cached_bytes = all_bytes - seen.tier_bytes["upstream"]
        by_tier = {
            r["metric"]["tier"]: float(r["value"][1])
            for r in prometheus.api("query", query=BY_TIER, time=ended)["result"]
        }
        assert by_tier == {tier: seen.tier_bytes[tier] for tier in by_tier}, seen
        assert stats["Served from cache"] == pytest.approx(seen.hits / seen.requests, abs=0.02)
        assert stats["Bytes not fetched from upstream"] == pytest.approx(
            cached_bytes / all_bytes, abs=0.02
        ), seen
        hits_paid = seen.hits - seen.results["revalidated"]  # a revalidation still asks S3
        saved = hits_paid / 1000 * 0.0004 + cached_bytes / GiB * 0.09  # the AWS list defaults
        # An absolute over the range, not a ratio: increase() extrapolates each target's delta
        # from its last sample to the evaluation time. That is nothing for the target scraped
        # last at `ended`, and at most a scrape interval (1 s) over a span of at least the
        # traffic's for the others, never less than the delta (each counter starts at zero).
        got = stats["Saved (USD, over the range)"]
        assert got is not None and saved * 0.99 <= got <= saved * (1 + 1.1 / (ended - begun))
        if nodes > 1:
            assert prometheus.value('min(s3tier_fleet_members{job="s3tier"})') == nodes
