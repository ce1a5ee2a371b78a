"""Operating s3tier: metrics, the admin surface, logs and shutdown, against running servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import free_port

MiB = 1 << 20


def scrape(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/_s3tier/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = (
                out.get(f"{sample.name}{{{labels}}}", 0) + sample.value
            )
    return out


def test_metrics_follow_a_scripted_sequence_of_hits_and_misses(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier()
    body = os.urandom(300_000)
    direct.put_object(Bucket=bucket, Key="m", Body=body)
    base = f"{server.url}/{bucket}"
    assert requests.get(f"{base}/m").headers["x-cache-status"] == "MISS"
    assert requests.get(f"{base}/m").headers["x-cache-status"] == "HIT-RAM"
    assert requests.head(f"{base}/m").headers["x-cache-status"] == "HIT-RAM"
    assert requests.get(f"{base}/absent").status_code == 404
    assert requests.get(f"{base}/m", params={"versionId": "null"}).status_code in (200, 400)
    got = scrape(server.url)
    assert got["s3tier_cache_results_total{result=miss}"] == 2  # the cold GET and the 404
    assert got["s3tier_cache_results_total{result=hit_ram}"] == 2
    assert got["s3tier_cache_results_total{result=bypass}"] == 1
    assert got["s3tier_requests_total{operation=get_object,status_class=2xx}"] >= 2
    assert got["s3tier_requests_total{operation=head_object,status_class=2xx}"] == 1
    assert got["s3tier_requests_total{operation=get_object,status_class=4xx}"] >= 1
    assert got["s3tier_served_bytes_total{tier=ram}"] == len(body)
    assert got["s3tier_served_bytes_total{tier=upstream}"] == len(body)
    assert got["s3tier_upstream_requests_total{operation=get_block}"] >= 1
    assert got["s3tier_upstream_received_bytes_total{operation=get_block}"] >= len(body)
    assert got["s3tier_tier_usage_bytes{tier=ram}"] >= len(body)
    assert got["s3tier_requests_in_flight{}"] == 0
    assert got["s3tier_response_duration_seconds_count{result=hit_ram}"] == 2


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (.ci/run installs it)"
)
def test_promtool_finds_nothing_to_complain_about(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier()
    direct.put_object(Bucket=bucket, Key="p", Body=b"x" * 1000)
    requests.get(f"{server.url}/{bucket}/p")
    exposition = requests.get(f"{server.url}/_s3tier/metrics").content
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).strip() == b""


def test_several_workers_report_summed_totals(start_s3tier: Any, direct: Any, bucket: str) -> None:
    server = start_s3tier("--workers", "2")
    direct.put_object(Bucket=bucket, Key="w", Body=b"y" * 5000)
    for _ in range(40):  # a new connection each time, so both workers answer some
        requests.get(f"{server.url}/{bucket}/w", headers={"Connection": "close"})
    time.sleep(1.5)  # let each worker's once-a-second sync run
    totals: list[float] = []
    for _ in range(4):  # whichever worker answers the scrape, the sums are the same
        got = scrape(server.url)
        totals.append(sum(v for k, v in got.items() if k.startswith("s3tier_cache_results_total")))
    assert totals == [40.0] * 4


def test_readiness_reports_the_upstream_and_the_disk(start_s3tier: Any, proxy_server: Any) -> None:
    ready = requests.get(f"{proxy_server.url}/_s3tier/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"upstream": "ok", "disk": "ok"}
    cut_off = start_s3tier(upstream=f"http://127.0.0.1:{free_port()}")
    unready = requests.get(f"{cut_off.url}/_s3tier/readyz")
    assert unready.status_code == 503
    assert unready.json()["checks"]["upstream"].startswith("unreachable")


def test_stats_purge_and_config(start_s3tier: Any, direct: Any, bucket: str) -> None:
    server = start_s3tier("--freshness", "immutable")
    for key in ("a/1", "a/2", "b/1"):
        direct.put_object(Bucket=bucket, Key=key, Body=b"z" * 10_000)
        requests.get(f"{server.url}/{bucket}/{key}")
        requests.get(f"{server.url}/{bucket}/{key}")
    stats = requests.get(f"{server.url}/_s3tier/stats").json()
    assert stats["cache_results"]["miss"] == 3 and stats["cache_results"]["hit_ram"] == 3
    assert stats["hit_ratio"] == 0.5
    assert stats["upstream_bytes_saved"] == 30_000
    assert stats["tiers"]["ram"]["used_bytes"] >= 30_000
    purged = requests.post(f"{server.url}/_s3tier/purge", json={"bucket": bucket, "prefix": "a/"})
    assert purged.json() == {"purged": 2}
    statuses = [requests.get(f"{server.url}/{bucket}/{k}").headers["x-cache-status"]
                for k in ("a/1", "a/2", "b/1")]  # fmt: skip
    assert statuses == ["MISS", "MISS", "HIT-RAM"]
    requests.post(f"{server.url}/_s3tier/purge", json={"bucket": bucket, "key": "b/1"})
    assert requests.get(f"{server.url}/{bucket}/b/1").headers["x-cache-status"] == "MISS"
    config = requests.get(f"{server.url}/_s3tier/config").json()
    assert config["freshness"]["default"] == "immutable"


def test_config_masks_the_admin_token_and_admin_routes_need_it(start_s3tier: Any) -> None:
    server = start_s3tier("--auth", "sigv4", "--admin-token", "tok-123")
    bearer = {"Authorization": "Bearer tok-123"}
    for path in ("metrics", "stats", "config"):
        assert requests.get(f"{server.url}/_s3tier/{path}").status_code == 401
    assert requests.get(f"{server.url}/_s3tier/readyz").status_code == 200
    config = requests.get(f"{server.url}/_s3tier/config", headers=bearer).json()
    assert config["admin_token"] == "***"
    assert "tok-123" not in server.log_text()


def test_sigterm_lets_an_in_flight_large_get_finish(
    start_s3tier: Any, direct: Any, bucket: str
) -> None:
    server = start_s3tier("--shutdown-grace", "20")
    data = os.urandom(24 * MiB)
    direct.put_object(Bucket=bucket, Key="big", Body=data)
    requests.get(f"{server.url}/{bucket}/big")  # cached, so the GET below is pure serving
    with requests.get(f"{server.url}/{bucket}/big", stream=True, timeout=60) as got:
        pieces = got.iter_content(MiB)
        received = next(pieces)
        os.kill(server.pid, signal.SIGTERM)
        time.sleep(0.5)  # shutting down: no new connections, this one goes on
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{server.url}/{bucket}/big", timeout=2)
        for piece in pieces:
            received += piece
            time.sleep(0.01)
    assert received == data
    assert server.proc is not None
    server.proc.wait(timeout=30)
    assert "Application shutdown complete" in server.log_text()


def test_json_logs_carry_the_request_id_clients_see(start_s3tier: Any, bucket: str) -> None:
    server = start_s3tier("--log-format", "json", upstream=f"http://127.0.0.1:{free_port()}")
    got = requests.get(f"{server.url}/{bucket}/k")
    assert got.status_code == 503
    request_id = got.headers["x-amz-request-id"]
    time.sleep(0.2)
    events = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    mine = [e for e in events if e["request_id"] == request_id]
    failures = [e for e in mine if e["level"] == "warning"]
    assert failures and "upstream failure" in failures[-1]["message"]
    assert [e for e in mine if e["message"].startswith("retrying")]  # retried before failing
    assert any(e["message"].startswith("starting s3tier") for e in events)
    assert not any("HIT" in e["message"] or "MISS" in e["message"] for e in events)
