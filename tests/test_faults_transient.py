"""A transient upstream fault costs a retry, not the cache's memory nor every waiter (issue 10,
items 3 and 4).

- A block fetch is buffered whole before any client sees a byte of it, so one that breaks
  mid-body is retried (bounded, with backoff, pinned by If-Match): a herd of readers all get
  the right bytes, and only a fault that outlasts the retries fails them, visibly.
- A read-ahead fetch that fails is the prefetcher's loss (counted as wasted), not the reader's:
  the reader that reaches the block fetches it itself.
- A 5xx answer to a revalidation says nothing about the object: the cached copy is kept, served
  as STALE under --serve-stale-on-error, and otherwise revalidated again once the upstream has
  recovered. A 404, a 403 or a new ETag does say something, and the copy is forgotten.

The faults are injected by the recording shim between s3tier and moto.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.harness import S3TierServer
from tests.test_faults_upstream import (
    BOUND_S,
    TIMEOUT_FLAGS,
    block_gets,
    fetch,
    is_clean_error,
    is_visibly_cut,
    is_whole,
    on_block,
    on_object,
    put_object,
)
from tests.upstream_shim import INTERNAL_ERROR, SLOW_DOWN, Recorded, UpstreamShim, s3_error_xml
from tiering.blocks import BlockKey, ObjectId
from tiering.meta import ObjectMeta
from tiering.prefetch import Prefetcher, PrefetchStats
from tiering.readahead import Budget, ReadAhead
from tiering.upstream import UpstreamBroken
from tiering.upstreamreads import says_nothing_of_the_object

MiB = 1 << 20
HERD = 20
SIZE = 8 * MiB
BLOCKS = SIZE // MiB


@pytest.fixture(autouse=True)
def _no_fault_outlives_its_test(shim: UpstreamShim) -> Iterator[None]:
    yield
    shim.clear_faults()


def herd(url: str) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(HERD) as pool:
        return list(pool.map(lambda _: fetch(url), range(HERD)))


def metric(server: S3TierServer, line_start: str) -> float:
    text = requests.get(f"{server.url}/_s3tier/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


def on_first_block(bucket: str, key: str) -> Callable[[Recorded], bool]:
    """A GET of bytes of the first block: its fetch, or a resume of it."""
    is_object = on_object(bucket, key)

    def matches(r: Recorded) -> bool:
        start = r.headers.get("Range", "").removeprefix("bytes=").partition("-")[0]
        return is_object(r) and start.isdigit() and int(start) < MiB

    return matches


# -- item 4: a broken block fetch is retried ---------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "reset"),
    [
        pytest.param(0, False, id="first-block-with-the-metadata-closed"),
        pytest.param(0, True, id="first-block-with-the-metadata-reset"),
        pytest.param(3, False, id="fourth-block-closed"),
        pytest.param(3, True, id="fourth-block-reset"),
    ],
)
def test_twenty_readers_of_a_cold_object_all_get_it_when_one_block_fetch_breaks_after_64_kib(
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
    shim: UpstreamShim,
    broken: int,
    reset: bool,
) -> None:
    server = start_s3tier(*TIMEOUT_FLAGS)
    data = put_object(direct, bucket, "herd", SIZE)
    # The stall lets every reader join the fetch before it breaks.
    fault = shim.break_next(on_block(bucket, "herd", broken), 64 << 10, reset=reset, stall_s=0.3)
    outcomes = herd(f"{server.url}/{bucket}/herd")
    assert fault.hits == 1, "the fault never fired"
    served = sum(is_whole(o, data) for o in outcomes)
    assert served == HERD, f"{served} of {HERD} readers got the object"
    assert {hashlib.md5(o.body).hexdigest() for o in outcomes} == {hashlib.md5(data).hexdigest()}
    fetches = [len(block_gets(shim, bucket, "herd", i)) for i in range(BLOCKS)]
    if broken == 0:
        # The first block was going to the readers as it came (cut-through): it is resumed
        # from where it broke, not fetched again (tests/test_cutthrough_e2e.py).
        assert fetches == [1] * BLOCKS
        resumed = [
            r
            for r in shim.matching("GET", f"/{bucket}/herd")
            if r.headers.get("Range") == f"bytes={64 << 10}-{MiB - 1}"
        ]
        assert len(resumed) == 1
    else:
        assert fetches == [2 if i == broken else 1 for i in range(BLOCKS)]


def test_a_block_fetch_that_breaks_on_every_attempt_fails_every_reader_visibly(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier(*TIMEOUT_FLAGS)
    data = put_object(direct, bucket, "herd", SIZE)
    shim.break_next(on_block(bucket, "herd", 3), 64 << 10, times=None)
    outcomes = herd(f"{server.url}/{bucket}/herd")
    assert [o for o in outcomes if not is_visibly_cut(o)] == [], "a cut body looked whole"
    # One load for the herd, its two retries; a reader whose read-ahead lost that load fetches
    # once more itself, with its own retries.
    assert 3 <= len(block_gets(shim, bucket, "herd", 3)) <= 6
    shim.clear_faults()
    assert is_whole(fetch(f"{server.url}/{bucket}/herd"), data)


def test_a_first_block_that_breaks_on_every_attempt_cuts_every_reader_visibly(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier(*TIMEOUT_FLAGS)
    data = put_object(direct, bucket, "herd", SIZE)
    in_first_block = on_first_block(bucket, "herd")
    shim.break_next(in_first_block, 64 << 10, times=None, stall_s=0.2)
    outcomes = herd(f"{server.url}/{bucket}/herd")
    # Its first bytes went to every reader as they came: each body can only be cut short.
    assert [(o.status, o.failure) for o in outcomes if not is_visibly_cut(o)] == []
    assert max(o.seconds for o in outcomes) < BOUND_S
    # The fetch, then its resume from 64 KiB with that resume's two retries; nothing more.
    assert len([r for r in list(shim.requests) if in_first_block(r)]) == 4
    shim.clear_faults()
    assert is_whole(fetch(f"{server.url}/{bucket}/herd"), data)


def test_a_first_block_that_never_answers_is_a_clean_503_for_every_reader(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str, shim: UpstreamShim
) -> None:
    server = start_s3tier(*TIMEOUT_FLAGS)
    data = put_object(direct, bucket, "herd", SIZE)
    shim.reset_next(on_block(bucket, "herd", 0), times=None)
    outcomes = herd(f"{server.url}/{bucket}/herd")
    assert [(o.status, o.failure) for o in outcomes if not is_clean_error(o)] == []
    assert max(o.seconds for o in outcomes) < BOUND_S
    assert 3 <= len(block_gets(shim, bucket, "herd", 0)) <= 6
    shim.clear_faults()
    assert is_whole(fetch(f"{server.url}/{bucket}/herd"), data)


def test_a_failed_read_ahead_fetch_is_wasted_prefetch_and_the_reader_fetches_the_block_itself(
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
    shim: UpstreamShim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No retries: the read-ahead's single attempt breaks. The stall keeps it in flight until
    # the reader reaches its block and waits for it.
    monkeypatch.setenv("S3TIER_UPSTREAM_RETRIES", "0")
    server = start_s3tier(*TIMEOUT_FLAGS)
    data = put_object(direct, bucket, "ahead", SIZE)
    fault = shim.break_next(on_block(bucket, "ahead", 5), 64 << 10, stall_s=0.5)
    got = fetch(f"{server.url}/{bucket}/ahead")
    assert fault.hits == 1, "the fault never fired"
    assert is_whole(got, data), (got.status, got.failure, len(got.body))
    assert len(block_gets(shim, bucket, "ahead", 5)) == 2
    wasted = metric(server, 's3tier_prefetch_bytes_total{outcome="wasted"}')
    used = metric(server, 's3tier_prefetch_bytes_total{outcome="used"}')
    issued = metric(server, 's3tier_prefetch_bytes_total{outcome="issued"}')
    assert wasted == MiB, "the failed read-ahead was not counted as wasted"
    assert used + wasted == issued, "the block the reader fetched itself was counted as used"


# -- item 3: a 5xx on revalidation keeps the cached copy -----------------------------------------

FRESH_S = 0.3


def revalidations(bucket: str, key: str, method: str) -> Callable[[Recorded], bool]:
    """Requests conditional on the cached ETag: what s3tier sends to revalidate."""
    is_object = on_object(bucket, key, method)
    return lambda r: is_object(r) and any(h.lower() == "if-none-match" for h in r.headers)


def expiring_server(start: Callable[..., S3TierServer], stale_ok: bool) -> S3TierServer:
    stale = ("--serve-stale-on-error",) if stale_ok else ()
    return start(*TIMEOUT_FLAGS, *stale, "--freshness", f"ttl:{FRESH_S}")


def cached_then_expired(server: S3TierServer, direct: Any, bucket: str, key: str) -> bytes:
    data = put_object(direct, bucket, key, 3000)
    first = requests.get(f"{server.url}/{bucket}/{key}")
    assert (first.content, first.headers["x-cache-status"]) == (data, "MISS")
    time.sleep(FRESH_S + 0.1)
    return data


FIVE_XX = [
    pytest.param(503, SLOW_DOWN, id="503-slow-down"),
    pytest.param(500, INTERNAL_ERROR, id="500-internal-error"),
]


@pytest.mark.parametrize(("status", "document"), FIVE_XX)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("stale_ok", [True, False], ids=["serve-stale-on-error", "no-stale"])
def test_a_5xx_on_revalidation_keeps_the_copy_served_as_stale_if_allowed_else_the_error(
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
    shim: UpstreamShim,
    status: int,
    document: bytes,
    method: str,
    stale_ok: bool,
) -> None:
    server = expiring_server(start_s3tier, stale_ok)
    data = cached_then_expired(server, direct, bucket, "k")
    fault = shim.answer_next(revalidations(bucket, "k", method), status, document, times=None)
    got = requests.request(method, f"{server.url}/{bucket}/k")
    assert fault.hits >= 1, "the revalidation never reached the upstream"
    if stale_ok:
        assert (got.status_code, got.headers["x-cache-status"]) == (200, "STALE")
        assert got.content == (data if method == "GET" else b"")
        assert got.headers["content-length"] == str(len(data))
    else:
        assert got.status_code == status
        assert got.content == (document if method == "GET" else b"")
    shim.clear_faults()
    shim.clear()
    again = requests.get(f"{server.url}/{bucket}/k")
    assert (again.content, again.headers["x-cache-status"]) == (data, "REVALIDATED")
    # Once recovered, the upstream was asked whether the copy still holds, and sent no body.
    assert [r.status for r in shim.matching(contains=f"/{bucket}/k")] == [304]


ACCESS_DENIED = s3_error_xml("AccessDenied", "Access Denied")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_403_on_revalidation_forgets_the_copy_even_with_serve_stale_on_error(
    start_s3tier: Callable[..., S3TierServer],
    direct: Any,
    bucket: str,
    shim: UpstreamShim,
    method: str,
) -> None:
    # Access revoked is an answer about the object for this proxy: serving the old bytes would
    # outlive the revocation. The client gets the 403 and the next read starts cold.
    server = expiring_server(start_s3tier, stale_ok=True)
    data = cached_then_expired(server, direct, bucket, "k")
    shim.answer_next(revalidations(bucket, "k", method), 403, ACCESS_DENIED, times=None)
    got = requests.request(method, f"{server.url}/{bucket}/k")
    assert got.status_code == 403
    assert got.content == (ACCESS_DENIED if method == "GET" else b"")
    shim.clear_faults()
    again = requests.get(f"{server.url}/{bucket}/k")
    assert (again.content, again.headers["x-cache-status"]) == (data, "MISS")


def test_a_404_on_revalidation_forgets_the_copy_even_with_serve_stale_on_error(
    start_s3tier: Callable[..., S3TierServer], direct: Any, bucket: str
) -> None:
    server = expiring_server(start_s3tier, stale_ok=True)
    cached_then_expired(server, direct, bucket, "k")
    direct.delete_object(Bucket=bucket, Key="k")
    assert requests.get(f"{server.url}/{bucket}/k").status_code == 404
    data = put_object(direct, bucket, "k", 10)
    again = requests.get(f"{server.url}/{bucket}/k")
    assert (again.content, again.headers["x-cache-status"]) == (data, "MISS")


# -- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kept"),
    [(500, True), (502, True), (503, True), (504, True), (404, False), (403, False), (400, False)],
)
def test_only_a_5xx_leaves_the_cached_copy_of_an_object_alone(status: int, kept: bool) -> None:
    assert says_nothing_of_the_object(status) is kept


def test_a_prefetch_whose_fetch_fails_is_wasted_and_a_later_read_of_its_block_is_not_use() -> None:
    size = 100
    meta = ObjectMeta('"e"', 10 * size, None, (), (), 0.0)
    obj = ObjectId("b", "k")

    async def broken(obj: ObjectId, meta: ObjectMeta, index: int) -> None:
        raise UpstreamBroken("reset after 64 KiB")

    async def go() -> PrefetchStats:
        tasks: list[asyncio.Task[Any]] = []
        budget = Budget(10 * size)
        prefetcher = Prefetcher(
            ReadAhead(), budget, size, (), cached=lambda key, meta: False, load=broken,
            spawn=lambda coro: tasks.append(asyncio.get_running_loop().create_task(coro)),
        )  # fmt: skip
        prefetcher._issue(obj, meta, 3)
        await asyncio.gather(*tasks)
        prefetcher.served(BlockKey("b", "k", '"e"', 3))  # the reader fetched it itself
        assert budget.in_flight == 0  # the failed fetch gave its budget back
        return prefetcher.stats

    stats = asyncio.run(go())
    assert (stats.issued_bytes, stats.used_bytes, stats.wasted_bytes) == (size, 0, size)
