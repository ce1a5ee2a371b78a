"""The live page at /_s3tier/: scripted traffic with known figures, /_s3tier/stats and
/_s3tier/live against them, and the page itself opened in a real headless Chromium (Debian's
chromium and chromedriver, driven by selenium): what it displays matches /_s3tier/stats, it asks
for nothing outside the proxy, and it logs no JavaScript error."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from proxy.live import GIB
from tests.harness import VENV_BIN, S3TierServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ADMIN_TOKEN = "dashboard-admin-token"
SIZES = {"a": 100_000, "b": 250_000, "c": 1_500_000}  # the c object spans two 1 MiB blocks


def scripted_traffic(server: S3TierServer, direct: Any, bucket: str) -> None:
    """Every object read twice: three misses, then three RAM hits."""
    for key, size in SIZES.items():
        direct.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))
    for _ in range(2):
        for key, size in SIZES.items():
            got = requests.get(f"{server.url}/{bucket}/{key}", timeout=30)
            assert len(got.content) == size


def live_after(url: str, points: int) -> dict[str, Any]:
    """/_s3tier/live once its history holds `points` more snapshots than now (one a second)."""

    def drawn() -> int:
        return len(requests.get(f"{url}/_s3tier/live", timeout=10).json()["series"]["t"])

    wanted, deadline = drawn() + points, time.monotonic() + 15
    while drawn() < wanted:
        assert time.monotonic() < deadline, "no snapshots taken"
        time.sleep(0.2)
    live: dict[str, Any] = requests.get(f"{url}/_s3tier/live", timeout=10).json()
    return live


def settled_stats(url: str, ram_bytes: int = sum(SIZES.values()), **kwargs: Any) -> dict[str, Any]:
    """/_s3tier/stats once the traffic's counts have all come in (the tiers' counts reach the
    metrics once a second) and stay put for a second."""

    def counts(stats: dict[str, Any]) -> tuple[object, ...]:
        return stats["cache_results"], stats["served_bytes"], stats["upstream_requests"]

    deadline, last = time.monotonic() + 15, None
    while True:
        stats: dict[str, Any] = requests.get(f"{url}/_s3tier/stats", timeout=10, **kwargs).json()
        done = stats["served_bytes"]["ram"] == ram_bytes
        if done and last is not None and counts(stats) == counts(last):
            return stats
        assert time.monotonic() < deadline, f"the counts never settled: {stats}"
        last = stats if done else None
        time.sleep(1.2)


def test_the_stats_say_what_the_traffic_did_and_price_what_it_saved(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    server = start_s3tier("--price-get-per-1000", "0.5", "--price-egress-per-gib", "2")
    live_after(server.url, 1)  # the history starts before the traffic
    scripted_traffic(server, direct, bucket)
    stats = settled_stats(server.url)
    total = sum(SIZES.values())
    assert stats["cache_results"]["miss"] == 3 and stats["cache_results"]["hit_ram"] == 3
    assert stats["hit_ratio"] == 0.5
    assert stats["served_bytes"]["ram"] == total and stats["served_bytes"]["upstream"] == total
    assert stats["byte_hit_ratio"] == 0.5
    saved = stats["savings"]
    assert (saved["requests_avoided"], saved["bytes_avoided"]) == (3, total)
    assert saved["usd"] == pytest.approx(3 / 1000 * 0.5 + total / GIB * 2, abs=1e-6)
    assert saved["price_source"] == "configured"
    assert stats["upstream_requests"] >= 4  # a block GET each, and the second block of c
    live = live_after(server.url, 2)
    assert live["stats"]["cache_results"] == stats["cache_results"]
    assert live["series"]["t"] and len(live["series"]["hit_ratio"]) == len(live["series"]["t"])
    assert live["latency"]["hit_ram"]["p50_ms"] is not None
    metrics = requests.get(f"{server.url}/_s3tier/metrics", timeout=10).text
    assert "s3tier_price_get_per_1000_usd 0.5" in metrics
    assert "s3tier_price_egress_per_gib_usd 2.0" in metrics


def test_s3tier_stats_prints_the_same_figures_in_the_terminal(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    server = start_s3tier("--auth", "sigv4", "--admin-token", ADMIN_TOKEN)
    argv = [str(VENV_BIN / "s3tier"), "stats", "--url", server.url]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "401" in refused.stderr
    stats = settled_stats(server.url, 0, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    done = subprocess.run([*argv, "--token", ADMIN_TOKEN], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hit ratio" in done.stdout and "saved           $0.000000 since start" in done.stdout
    assert f"{stats['upstream_requests']:.0f} requests" in done.stdout
    assert "ram tier" in done.stdout and "disk tier" in done.stdout


def test_under_sigv4_the_page_and_its_figures_need_the_admin_token(
    start_s3tier: Callable[..., S3TierServer],
) -> None:
    server = start_s3tier("--auth", "sigv4", "--admin-token", ADMIN_TOKEN)
    for path in ("/_s3tier/", "/_s3tier/live", "/_s3tier/assets/dashboard.js"):
        assert requests.get(server.url + path, timeout=10).status_code == 401, path
    wrong = requests.get(f"{server.url}/_s3tier/?token=nope", timeout=10, allow_redirects=False)
    assert wrong.status_code == 401
    browser = requests.Session()
    signed = browser.get(f"{server.url}/_s3tier/?token={ADMIN_TOKEN}", timeout=10)
    assert signed.history[0].status_code == 303 and signed.url == f"{server.url}/_s3tier/"
    cookie = signed.history[0].headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_s3tier/" in cookie
    assert "<title>s3tier</title>" in signed.text
    assert browser.get(f"{server.url}/_s3tier/live", timeout=10).json()["stats"]
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert requests.get(f"{server.url}/_s3tier/live", headers=bearer, timeout=10).ok


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1250",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_in_a_real_browser_shows_the_figures_of_the_stats(
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
    chromium: Any,
    tmp_path: Path,
) -> None:
    server = start_s3tier()
    scripted_traffic(server, direct, bucket)
    stats = settled_stats(server.url)
    chromium.get(f"{server.url}/_s3tier/")
    deadline = time.monotonic() + 20
    # A few updates in, so the sparklines have points and the page has polled since the traffic.
    while int(chromium.execute_script("return document.body.dataset.updates || 0")) < 3:
        assert time.monotonic() < deadline, "the page never updated"
        time.sleep(0.2)

    def shown(element_id: str) -> str:
        return str(chromium.execute_script(
            "return document.getElementById(arguments[0]).dataset.value", element_id
        ))  # fmt: skip

    saved = stats["savings"]
    assert float(shown("hit-ratio")) == stats["hit_ratio"] == 0.5
    assert float(shown("byte-hit-ratio")) == stats["byte_hit_ratio"]
    assert float(shown("requests-avoided")) == saved["requests_avoided"] == 3
    assert float(shown("bytes-avoided")) == saved["bytes_avoided"] == sum(SIZES.values())
    assert float(shown("saved-usd")) == pytest.approx(saved["usd"])
    assert float(shown("upstream-requests")) == stats["upstream_requests"]
    assert float(shown("tier-ram")) == stats["tiers"]["ram"]["used_bytes"]
    results = chromium.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#results td')]"
        ".map((td) => [td.dataset.name, Number(td.dataset.value)]))"
    )
    assert results == stats["cache_results"]
    assert chromium.find_element("id", "hit-ratio").text == "50.0%"
    assert chromium.find_element("id", "status").text == "live"
    assert chromium.execute_script("return document.querySelectorAll('canvas').length") == 6
    # Nothing outside the proxy: every resource the page loaded came from it.
    loaded = chromium.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert loaded and all(url.startswith(server.url + "/_s3tier/") for url in loaded), loaded
    errors = [e for e in chromium.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    shot = Path(os.environ.get("S3TIER_SCREENSHOT_DIR", tmp_path)) / "dashboard.png"
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
