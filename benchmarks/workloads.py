"""The seven workloads of issue 6 §2, and W1s of issue 11 (W1 with every request verified),
each run against s3tier and nginx in the same session.

Every workload seeds its own objects, starts both servers fresh with its budgets, warms
them where it measures hits, and returns, per server, one record per repetition. The keys a
record may carry, and what the report makes of them, are listed in `report.FIGURES`.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime
import itertools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import loadgen
import seed
import signed
from loadgen import Fetched, Req, check, write_keyfile
from rig import (
    Rig,
    Target,
    fetch,
    footprint,
    in_turn,
    latency_ms,
    metered,
    percentile,
    statuses,
    wrk_measure,
)
from seed import Obj
from servers import rss_bytes
from writes import w8, w9, w10

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
RANGE_BYTES = 64 * KIB
CONTROL_RANGE_BYTES = 60 * KIB  # see w4()
PHASE_TIMEOUT_S = 600
Runs = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes, counts and durations: `full()` for BENCHMARKS.md, `quick()` for the smoke test."""

    quick: bool
    repeats: int
    duration_s: float  # one wrk measurement
    warm_s: float  # one wrk warm-up before the measured repetitions (0: none)
    w1_objects: int
    w2_objects: int
    w3_objects: int
    w3_size: int
    w4_size: int
    w4_objects: int
    w4_ranges: int
    w4_cold_concurrency: int
    w5_size: int
    w5_clients: int
    w6_sizes: tuple[int, int]
    w6_samples: int
    w6_delay_ms: float
    w7_objects: int
    w7_min_size: int
    w7_max_size: int
    w7_trace: int
    w7_warm: int
    w7_alpha: float
    w7_budget_share: float

    @classmethod
    def full(cls, repeats: int = 3) -> Plan:
        return cls(
            quick=False,
            repeats=repeats,
            duration_s=6,
            warm_s=2,
            w1_objects=1000,
            w2_objects=128,
            w3_objects=4,
            w3_size=64 * MIB,
            # moto reads a whole object for every ranged GET: 1 GiB objects made the cold phase
            # take ~45 s per server and repetition, so the 1 GiB is four 256 MiB objects.
            w4_size=256 * MIB,
            w4_objects=4,
            w4_ranges=32,
            w4_cold_concurrency=2,
            w5_size=16 * MIB,
            w5_clients=64,
            w6_sizes=(16 * KIB, 1 * MIB),
            w6_samples=25,
            w6_delay_ms=20,
            w7_objects=20_000,
            w7_min_size=1 * KIB,
            w7_max_size=256 * KIB,
            w7_trace=10_000,
            w7_warm=4_000,
            w7_alpha=0.9,
            w7_budget_share=0.10,
        )

    @classmethod
    def quick_plan(cls, repeats: int = 1) -> Plan:
        return cls(
            quick=True,
            repeats=repeats,
            duration_s=1,
            warm_s=0,
            w1_objects=50,
            w2_objects=8,
            w3_objects=2,
            w3_size=4 * MIB,
            w4_size=8 * MIB,
            w4_objects=1,
            w4_ranges=6,
            w4_cold_concurrency=2,
            w5_size=2 * MIB,
            w5_clients=64,
            w6_sizes=(16 * KIB, 1 * MIB),
            w6_samples=3,
            w6_delay_ms=20,
            w7_objects=200,
            w7_min_size=1 * KIB,
            w7_max_size=16 * KIB,
            w7_trace=400,
            w7_warm=150,
            w7_alpha=0.9,
            w7_budget_share=0.10,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(title: str, params: dict[str, Any], runs: Runs, **extra: Any) -> dict[str, Any]:
    return {"title": title, "params": params, "runs": runs, **extra}


def _seeded(rig: Rig, objects: Sequence[Obj]) -> float:
    seconds = seed.seed(rig.moto.url, objects)
    rig.log(
        f"  seeded {len(objects)} objects, {sum(o.size for o in objects) / MIB:,.0f} MiB "
        f"in {seconds:.1f} s"
    )
    return round(seconds, 1)


def _warm(
    rig: Rig,
    plan: Plan,
    t: Target,
    reqs: Sequence[Req],
    sizes: Sequence[int],
    concurrency: int,
    connections: int,
    keyfile: Any,
) -> dict[str, int]:
    """Fetch everything twice (the second pass finds it cached), then let wrk run over the
    list for a while so every worker process holds the hot set; returns the cache statuses
    a final pass saw."""
    for _ in range(2):
        check(fetch(t, reqs, concurrency, PHASE_TIMEOUT_S), sizes)
    if plan.warm_s:
        rig.wrk(connections, plan.warm_s).run(t.url, keyfile)
    final = fetch(t, reqs, 16, PHASE_TIMEOUT_S)
    check(final, sizes)
    return statuses(final)


def _hot(
    rig: Rig,
    plan: Plan,
    wid: str,
    objects: Sequence[Obj],
    flags: Sequence[str],
    connections: int,
    warm_concurrency: int,
    reqs: Sequence[Req] | None = None,
) -> tuple[Runs, dict[str, Any]]:
    """W1–W3: warm both servers, then wrk over the key list (by default a plain GET of each
    object), servers interleaved."""
    reqs = reqs if reqs is not None else [Req(o.path) for o in objects]
    sizes = [o.size for o in objects]
    keyfile = write_keyfile(rig.scratch / f"{wid}.keys", reqs)
    runs: Runs = {}
    warm: dict[str, Any] = {}
    with rig.servers(wid, flags, with_alt=not plan.quick) as targets:
        for t in targets:
            warm[t.name] = _warm(rig, plan, t, reqs, sizes, warm_concurrency, connections, keyfile)
            rig.log(f"  {t.name} warm: {warm[t.name]}")
        wrk = rig.wrk(connections, plan.duration_s)
        for rep in range(plan.repeats):
            for t in in_turn(targets, rep):
                runs.setdefault(t.name, []).append(record := wrk_measure(t, wrk, keyfile))
                rig.log(
                    f"  rep {rep + 1} {t.name:8s} {record['rps']:9,.0f} req/s "
                    f"{record['bytes_per_s'] / MIB:8,.0f} MiB/s  p99 {record['p99_ms']:.1f} ms "
                    f"cpu {record.get('cpu_s_per_gib', 0):.2f} s/GiB"
                )
    return runs, warm


def w1(rig: Rig, plan: Plan) -> dict[str, Any]:
    objects = [Obj(f"w1/{i:05d}", 4 * KIB) for i in range(plan.w1_objects)]
    seeded = _seeded(rig, objects)
    flags = ["--ram-bytes", "256MiB"]
    runs, warm = _hot(rig, plan, "W1", objects, flags, connections=64, warm_concurrency=16)
    params = {
        "objects": len(objects),
        "object_bytes": 4 * KIB,
        "s3tier_flags": flags,
        "wrk_connections": 64,
        "seed_s": seeded,
    }
    return _result("4 KiB objects, hot set in RAM", params, runs, warm_statuses=warm)


def w1s(rig: Rig, plan: Plan) -> dict[str, Any]:
    """W1 with s3tier under `--auth sigv4`: each request carries a SigV4 signature (made in
    advance, `benchmarks/signed.py`) that s3tier verifies; nginx gets the same bytes and
    verifies nothing."""
    objects = [Obj(f"w1s/{i:05d}", 4 * KIB) for i in range(plan.w1_objects)]
    seeded = _seeded(rig, objects)
    # Signed now, so the whole workload runs well inside the 15-minute skew allowance.
    reqs = signed.signed_gets([o.path for o in objects], datetime.datetime.now(datetime.UTC))
    keys = signed.keyring_file(rig.scratch)
    # After S3Tier's own `--auth none`: the last flag wins.
    flags = ["--ram-bytes", "256MiB", "--auth", "sigv4", "--credentials-file", str(keys)]
    flags += ["--region", signed.REGION]
    runs, warm = _hot(rig, plan, "W1s", objects, flags, 64, warm_concurrency=16, reqs=reqs)
    params = {
        "objects": len(objects),
        "object_bytes": 4 * KIB,
        "s3tier_flags": flags,
        "signed_headers": "host;amz-sdk-invocation-id;amz-sdk-request;x-amz-content-sha256;"
        "x-amz-date",
        "wrk_connections": 64,
        "seed_s": seeded,
    }
    return _result("4 KiB objects, hot set in RAM, SigV4-signed", params, runs, warm_statuses=warm)


def w2(rig: Rig, plan: Plan) -> dict[str, Any]:
    objects = [Obj(f"w2/{i:04d}", MIB) for i in range(plan.w2_objects)]
    seeded = _seeded(rig, objects)
    flags = ["--ram-bytes", "512MiB"]
    runs, warm = _hot(rig, plan, "W2", objects, flags, connections=32, warm_concurrency=8)
    params = {
        "objects": len(objects),
        "object_bytes": MIB,
        "s3tier_flags": flags,
        "wrk_connections": 32,
        "seed_s": seeded,
    }
    return _result("1 MiB objects, hot set in RAM", params, runs, warm_statuses=warm)


def w3(rig: Rig, plan: Plan) -> dict[str, Any]:
    objects = [Obj(f"w3/{i:03d}", plan.w3_size) for i in range(plan.w3_objects)]
    seeded = _seeded(rig, objects)
    # Objects over --ram-max-object never live in RAM: every hit comes from the disk tier.
    flags = ["--ram-max-object", "1MiB", "--disk-bytes", "8GiB"]
    runs, warm = _hot(rig, plan, "W3", objects, flags, connections=8, warm_concurrency=2)
    params = {
        "objects": len(objects),
        "object_bytes": plan.w3_size,
        "s3tier_flags": flags,
        "wrk_connections": 8,
        "seed_s": seeded,
    }
    title = f"{plan.w3_size // MIB} MiB objects from the disk tier"
    return _result(title, params, runs, warm_statuses=warm)


def _ranges(
    objects: Sequence[Obj], count: int, rng: random.Random, length: int = RANGE_BYTES
) -> list[Req]:
    picks = [(rng.choice(objects), rng.random()) for _ in range(count)]
    starts = [(o, int(u * (o.size - RANGE_BYTES + 1))) for o, u in picks]
    return [Req(o.path, f"bytes={s}-{s + length - 1}") for o, s in starts]


def w4(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Random 64 KiB ranges of one big object: upstream bytes while cold, then req/s warm.

    Warm, the same ranges are also read 60 KiB long (a prefix of each, so just as cached): on
    loopback a 64 KiB answer is one full 65,483-byte segment plus a small tail, and nginx
    (tcp_nopush, so Nagle on) holds the tail until the client's delayed ACK, 40 ms later, on
    every keep-alive request. A 60 KiB answer fits one segment and shows the servers' speed."""
    objects = [Obj(f"w4/big-{i}", plan.w4_size) for i in range(plan.w4_objects)]
    seeded = _seeded(rig, objects)
    # RAM may hold blocks of this object, as nginx's page cache holds its slice files.
    ram = str(max(256 * MIB, plan.w4_size))  # a cap, not an allocation: --ram-max-object <= it
    flags = ["--ram-bytes", ram, "--ram-max-object", str(plan.w4_size), "--disk-bytes", "4GiB"]
    runs: Runs = {}
    for rep in range(plan.repeats):
        reqs = _ranges(objects, plan.w4_ranges, random.Random(f"w4-{rep}"))
        control = _ranges(objects, plan.w4_ranges, random.Random(f"w4-{rep}"), CONTROL_RANGE_BYTES)
        keyfile = write_keyfile(rig.scratch / f"W4-{rep}.keys", reqs)
        control_keys = write_keyfile(rig.scratch / f"W4-{rep}-60k.keys", control)
        with rig.servers(f"W4-rep{rep}", flags) as targets:
            cold = {
                t.name: _cold_ranges(t, reqs, plan.w4_cold_concurrency)
                for t in in_turn(targets, rep)
            }
            wrk = rig.wrk(32, plan.duration_s)
            for t in in_turn(targets, rep):
                record = wrk_measure(t, wrk, keyfile)
                record["rps_warm_60k"] = wrk_measure(t, wrk, control_keys)["rps"]
                runs.setdefault(t.name, []).append(
                    {**cold[t.name], **record, "rps_warm": record["rps"]}
                )
                rig.log(
                    f"  rep {rep + 1} {t.name:8s} cold: "
                    f"{cold[t.name]['upstream_bytes_cold'] / MIB:.1f} MiB upstream in "
                    f"{cold[t.name]['cold_wall_s']:.1f} s; warm {record['rps']:,.0f} req/s "
                    f"(60 KiB: {record['rps_warm_60k']:,.0f})"
                )
    params = {
        "objects": plan.w4_objects,
        "object_bytes": plan.w4_size,
        "ranges_per_repetition": plan.w4_ranges,
        "range_bytes": RANGE_BYTES,
        "control_range_bytes": CONTROL_RANGE_BYTES,
        "cold_concurrency": plan.w4_cold_concurrency,
        "s3tier_flags": flags,
        "wrk_connections": 32,
        "seed_s": seeded,
    }
    count = f"{plan.w4_objects} × " if plan.w4_objects > 1 else "a "
    plural = "s" * (plan.w4_objects > 1)
    title = f"random 64 KiB ranges over {count}{_size(plan.w4_size)} object{plural}, cold then warm"
    return _result(title, params, runs)


def _cold_ranges(t: Target, reqs: Sequence[Req], concurrency: int) -> dict[str, Any]:
    assert t.shim is not None
    record: dict[str, Any] = {}
    with metered(t, record):
        fetched = fetch(t, reqs, concurrency, PHASE_TIMEOUT_S)
    check(fetched, [RANGE_BYTES] * len(reqs))
    counts = t.shim.stats()
    lat = latency_ms(fetched)
    log = t.shim.log()
    return {
        "upstream_bytes_cold": counts["body_bytes"],
        "upstream_requests_cold": counts["requests"],
        "upstream_unasked_cold": len(unasked(log, reqs)),
        "upstream_log_cold": log,
        "cold_p50_ms": lat["p50_ms"],
        "cold_p99_ms": lat["p99_ms"],
        "cold_wall_s": record["wall_s"],
        "cold_statuses": statuses(fetched),
    }


def _span(range_value: str | None) -> tuple[int, int] | None:
    """`bytes=a-b` as (a, b); None for no Range (the whole object)."""
    if not range_value or not range_value.startswith("bytes="):
        return None
    first, _, last = range_value[6:].partition("-")
    return int(first), int(last)


def unasked(log: Sequence[Sequence[Any]], reqs: Sequence[Req]) -> list[Sequence[Any]]:
    """Upstream GETs that overlap no range a client asked for (read-ahead, for instance)."""
    asked = [(r.path, _span(r.range)) for r in reqs]
    out: list[Sequence[Any]] = []
    for method, path, range_value, _status, _bytes in log:
        got = _span(range_value)
        if method != "GET" or got is None:
            continue
        if not any(
            p == path and s is not None and s[0] <= got[1] and got[0] <= s[1] for p, s in asked
        ):
            out.append([method, path, range_value, _status, _bytes])
    return out


def repeated(log: Sequence[Sequence[Any]]) -> int:
    """Upstream GETs of a range already fetched once (a block fetched twice)."""
    seen = [tuple(e[:3]) for e in log]
    return len(seen) - len(set(seen))


def w5(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Many clients at once on one cold object: how many bytes each server pulls for it."""
    objects = [Obj(f"w5/cold-{rep}", plan.w5_size) for rep in range(plan.repeats)]
    seeded = _seeded(rig, objects)
    runs: Runs = {}
    with rig.servers("W5", []) as targets:
        for rep, obj in enumerate(objects):
            for t in in_turn(targets, rep):
                assert t.shim is not None
                record: dict[str, Any] = {}
                with metered(t, record):
                    coro = loadgen.fetch_together(t.url, Req(obj.path), plan.w5_clients)
                    fetched: list[Fetched] = loadgen.run(coro, PHASE_TIMEOUT_S)  # type: ignore[assignment]
                check(fetched, [obj.size] * len(fetched))
                counts = t.shim.stats(obj.path)
                log = [e for e in t.shim.log() if e[1] == obj.path]
                record |= {
                    "upstream_bytes": counts["body_bytes"],
                    "upstream_requests": counts["requests"],
                    "upstream_repeated": repeated(log),
                    "upstream_log": log,
                    "upstream_over_size": counts["body_bytes"] / obj.size,
                    "statuses": statuses(fetched),
                    **latency_ms(fetched),
                }
                runs.setdefault(t.name, []).append(record)
                rig.log(
                    f"  rep {rep + 1} {t.name:8s} {counts['body_bytes'] / MIB:.2f} MiB in "
                    f"{counts['requests']} upstream requests for a {obj.size / MIB:.0f} MiB object"
                )
    params = {"object_bytes": plan.w5_size, "clients": plan.w5_clients, "seed_s": seeded}
    title = f"{plan.w5_clients} concurrent GETs of one cold {_size(plan.w5_size)} object"
    return _result(title, params, runs)


def w6(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Time to first byte of cold misses behind an upstream 20 ms away, less the same
    request's TTFB straight from that upstream (through the same delaying shim)."""
    small, large = plan.w6_sizes
    objects = {
        (rep, size): [Obj(f"w6/r{rep}-{size}-{i:03d}", size) for i in range(plan.w6_samples)]
        for rep in range(plan.repeats)
        for size in plan.w6_sizes
    }
    warm_obj = Obj("w6/warm", 1 * KIB)
    seeded = _seeded(rig, [warm_obj, *itertools.chain.from_iterable(objects.values())])
    with rig.servers("W6", []) as targets:
        everyone = [rig.direct(), *targets]
        shims = [t.shim for t in everyone if t.shim is not None]
        for shim in shims:
            shim.set_delay(plan.w6_delay_ms)
        try:
            coro = _ttfbs(everyone, objects, warm_obj)
            ttfb: dict[tuple[str, int, int], list[float]] = loadgen.run(coro, PHASE_TIMEOUT_S)  # type: ignore[assignment]
        finally:
            for shim in shims:
                shim.set_delay(0)
        rss = {t.name: _rss(t) for t in targets}
    runs: Runs = {}
    for rep in range(plan.repeats):
        for t in everyone:
            record: dict[str, Any] = {}
            for label, size in (("small", small), ("large", large)):
                mine, direct = ttfb[(t.name, rep, size)], ttfb[("direct", rep, size)]
                for q in (50, 99):
                    ms = _pct(mine, q)
                    record[f"ttfb_p{q}_ms_{label}"] = ms
                    record[f"ttfb_p{q}_delta_ms_{label}"] = ms - _pct(direct, q)
            record["p50_ms"], record["p99_ms"] = (
                record["ttfb_p50_ms_large"],
                record["ttfb_p99_ms_large"],
            )
            if t.name in rss:
                record["rss_bytes"] = rss[t.name]
            runs.setdefault(t.name, []).append(record)
            rig.log(
                f"  rep {rep + 1} {t.name:8s} TTFB p50 {record['ttfb_p50_ms_small']:.1f} / "
                f"{record['ttfb_p50_ms_large']:.1f} ms (small / large)"
            )
    params = {
        "sizes": list(plan.w6_sizes),
        "samples_per_size_per_repetition": plan.w6_samples,
        "added_latency_ms": plan.w6_delay_ms,
        "seed_s": seeded,
    }
    title = f"cold misses, {plan.w6_delay_ms:g} ms added upstream latency (TTFB over direct)"
    return _result(title, params, runs)


async def _ttfbs(
    everyone: Sequence[Target], objects: dict[tuple[int, int], list[Obj]], warm_obj: Obj
) -> dict[tuple[str, int, int], list[float]]:
    """One keep-alive connection per target; each cold object is fetched by every target in
    turn, the order rotated per object."""
    sessions = {t.name: loadgen.session(1) for t in everyone}
    out: dict[tuple[str, int, int], list[float]] = {}
    try:
        for t in everyone:
            for _ in range(2):  # open the connections, and s3tier's and nginx's to the shim
                await loadgen.fetch_one(sessions[t.name], t.url, Req(warm_obj.path))
        for (rep, size), objs in objects.items():
            for i, obj in enumerate(objs):
                turn = i % len(everyone)
                for t in [*everyone[turn:], *everyone[:turn]]:
                    got = await loadgen.fetch_one(sessions[t.name], t.url, Req(obj.path))
                    check([got], [obj.size])
                    out.setdefault((t.name, rep, size), []).append(got.ttfb_s * 1e3)
    finally:
        await asyncio.gather(*(s.close() for s in sessions.values()))
    return out


def zipf_trace(n: int, alpha: float, length: int, rng: random.Random, perm_seed: str) -> list[int]:
    """`length` draws of object indices, rank k drawn with weight k^-alpha; which object holds
    which rank is a fixed shuffle, so popularity is unrelated to key order or size."""
    cumulative = list(itertools.accumulate(k**-alpha for k in range(1, n + 1)))
    holder = list(range(n))
    random.Random(perm_seed).shuffle(holder)
    top = cumulative[-1]
    return [holder[bisect.bisect_left(cumulative, rng.random() * top)] for _ in range(length)]


def w7(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Zipf over many objects with a cache a tenth of their bytes: byte hit ratio, req/s."""
    rng = random.Random("w7-sizes")
    low, high = math.log(plan.w7_min_size), math.log(plan.w7_max_size)
    objects = [
        Obj(f"w7/{i:05d}", int(math.exp(rng.uniform(low, high)))) for i in range(plan.w7_objects)
    ]
    working_set = sum(o.size for o in objects)
    budget = int(working_set * plan.w7_budget_share)
    seeded = _seeded(rig, objects)
    nginx_max_size = f"{max(1, budget // KIB)}k"
    runs: Runs = {}
    honoured: list[int] = []
    for rep in range(plan.repeats):
        trace = zipf_trace(
            len(objects), plan.w7_alpha, plan.w7_trace, random.Random(f"w7-{rep}"), "w7"
        )
        reqs = [Req(objects[i].path) for i in trace]
        sizes = [objects[i].size for i in trace]
        keyfile = write_keyfile(rig.scratch / f"W7-{rep}.keys", reqs)
        # nginx enforces max_size= only when its cache manager wakes (every ~10 s), so it
        # holds more than it is given. Its budget is what it actually held at its peak,
        # measured first; s3tier, which never exceeds its own, then gets exactly that.
        held = budget
        for name in ("nginx", "s3tier"):
            flags = _w7_flags(held, plan.w7_max_size)
            with rig.servers(f"W7-rep{rep}-{name}", flags, nginx_max_size) as targets:
                t = next(target for target in targets if target.name == name)
                record = _hit_ratio(t, reqs, sizes, plan.w7_warm)
                record |= wrk_measure(t, rig.wrk(64, plan.duration_s), keyfile)
            record["budget_bytes"] = held
            runs.setdefault(name, []).append(record)
            rig.log(
                f"  rep {rep + 1} {name:8s} byte hit ratio {record['byte_hit_ratio']:.3f} "
                f"({record['pass_s']:.1f} s, {held / MIB:.0f} MiB); {record['rps']:,.0f} req/s"
            )
            if name == "nginx":
                held = max(budget, int(record.get("disk_cache_peak_bytes") or budget))
                honoured.append(held)
    flags = _w7_flags(budget, plan.w7_max_size)
    params = {
        "objects": len(objects),
        "sizes": f"{_size(plan.w7_min_size)}–{_size(plan.w7_max_size)} log-uniform",
        "working_set_bytes": working_set,
        "budget_bytes": budget,
        "zipf_alpha": plan.w7_alpha,
        "trace_requests": plan.w7_trace,
        "warm_requests": plan.w7_warm,
        "s3tier_flags": flags,
        "s3tier_budget": "the bytes nginx held at its peak in the same repetition",
        "s3tier_budget_bytes": honoured,
        "nginx_max_size": nginx_max_size,
        "wrk_connections": 64,
        "seed_s": seeded,
    }
    title = (
        f"Zipf({plan.w7_alpha:g}) over {len(objects):,} objects, "
        f"cache {plan.w7_budget_share:.0%} of the working set"
    )
    return _result(title, params, runs)


def _w7_flags(budget: int, max_object: int) -> list[str]:
    return [
        "--ram-bytes", str(budget), "--disk-bytes", str(budget),
        "--ram-max-object", str(min(budget, max_object)),
    ]  # fmt: skip


def _hit_ratio(t: Target, reqs: Sequence[Req], sizes: Sequence[int], warm: int) -> dict[str, Any]:
    """Replay the trace: the first `warm` requests fill the cache, the rest are counted."""
    assert t.shim is not None
    check(fetch(t, reqs[:warm], 16, PHASE_TIMEOUT_S), sizes[:warm])
    t.shim.reset()
    record: dict[str, Any] = {}
    with metered(t, record), footprint(t, record):
        fetched = fetch(t, reqs[warm:], 16, PHASE_TIMEOUT_S)
    check(fetched, sizes[warm:])
    served = sum(f.body_bytes for f in fetched)
    upstream = t.shim.stats()["body_bytes"]
    hits = sum(f.cache_status.startswith("HIT") for f in fetched)
    return {
        "byte_hit_ratio": 1 - upstream / served,
        "served_bytes": served,
        "upstream_bytes": upstream,
        "request_hit_ratio": hits / len(fetched),
        "pass_s": record["wall_s"],
        "disk_cache_peak_bytes": record.get("disk_cache_peak_bytes"),
        "pass_statuses": statuses(fetched),
    }


def _pct(values: Sequence[float], q: int) -> float:
    return statistics.median(values) if q == 50 else percentile(values, q)


def _rss(t: Target) -> int:
    return rss_bytes(t.pid) if t.pid is not None else 0


def _size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


WORKLOADS = {
    "W1": w1, "W1s": w1s, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7, "W8": w8,
    "W9": w9, "W10": w10,
}  # fmt: skip
