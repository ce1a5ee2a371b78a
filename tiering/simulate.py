"""Replay request traces through the real policy objects: `python -m tiering.simulate`.

For each workload and cache size (a fraction of the working set: the summed sizes of the
distinct objects requested) it prints the object hit ratio (hits / requests) and the byte hit
ratio (bytes served from cache / bytes requested) of s3tier's policy, of LRU, of the published
policies as libCacheSim implements them (`tiering.reference`: S3-FIFO, SIEVE, ARC, LIRS,
W-TinyLFU, its LRU and its size-aware Belady), and offline; each with its distance to offline.

Offline. With objects of different sizes Belady's MIN is no longer optimal and the optimum is
NP-hard (Berger et al., "Practical Bounds on Optimal Caching with Variable Object Sizes", 2018).
Four offline schedules run, each free to not cache a missed object; `offline` is the best of
them for each ratio. Each is a real schedule, so the figure is achievable (a lower bound on the
true optimum), not a proof that no policy can do better; the tests check it beats LRU and ours.
- MIN: evict what is requested again furthest in the future (every hit byte counts the same).
- Belady-Size: evict the largest (reuse interval x size), the byte-time held per hit.
- Static, Static-Size: knowing all request counts, keep the most requested objects (or the
  most requested per byte) that fit, from their first request on: the knapsack view.

Workloads come from a seeded generator (the same seed gives the same output), or from a text
trace (`--trace FILE`, lines of `timestamp key size`; a key seen again with another size is a
new object, as a new version is in s3tier). docs/policy.md has the table and how to read it.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import itertools
import os
import random
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from tiering import reference
from tiering.policy import LRUPolicy, Policy, TinyLFUPolicy

FRACTIONS = (0.01, 0.05, 0.10, 0.25)
POLICIES: dict[str, Callable[[int], Policy]] = {"s3tier": TinyLFUPolicy, "LRU": LRUPolicy}
OFFLINE = "offline"
BOUNDS = ("MIN", "Belady-Size", "Static", "Static-Size")
MIN_SIZE, MAX_SIZE = 4 << 10, 64 << 20
RATIOS = ("object_hit_ratio", "byte_hit_ratio")


@dataclass(frozen=True, slots=True)
class Workload:
    """A request sequence: parallel tuples of key, size in bytes and timestamp."""

    name: str
    keys: tuple[int, ...]
    sizes: tuple[int, ...]
    times: tuple[float, ...]

    @property
    def working_set_bytes(self) -> int:
        return sum(dict(zip(self.keys, self.sizes, strict=True)).values())


@dataclass(frozen=True, slots=True)
class Ratios:
    """Hit ratios of one policy on one workload at one cache size, as fractions."""

    object_hit_ratio: float
    byte_hit_ratio: float


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    workload: str
    cache_fraction: float
    capacity_bytes: int
    results: Mapping[str, Ratios]  # by policy or offline schedule name


# --- workloads ------------------------------------------------------------------------------


def object_sizes(count: int, rng: random.Random) -> list[int]:
    """Log-uniform sizes from 4 KiB to 64 MiB, independent of popularity."""
    low, high = MIN_SIZE.bit_length() - 1, MAX_SIZE.bit_length() - 1
    return [int(2 ** rng.uniform(low, high)) for _ in range(count)]


def zipf_keys(alpha: float, objects: int, requests: int, rng: random.Random) -> list[int]:
    """`requests` keys in 0..objects-1; the key of popularity rank r has weight 1/r^alpha."""
    ranked = list(range(objects))
    rng.shuffle(ranked)  # popularity must not follow key order (nor, through it, size)
    weights = itertools.accumulate(1.0 / (rank + 1) ** alpha for rank in range(objects))
    return rng.choices(ranked, cum_weights=list(weights), k=requests)


def _workload(name: str, keys: list[int], sizes: list[int]) -> Workload:
    times = tuple(map(float, range(len(keys))))  # one request per tick
    return Workload(name, tuple(keys), tuple(sizes[k] for k in keys), times)


def zipf(alpha: float, objects: int, requests: int, seed: int) -> Workload:
    rng = random.Random(f"zipf-{alpha}-{seed}")
    sizes = object_sizes(objects, rng)
    return _workload(f"zipf-{alpha}", zipf_keys(alpha, objects, requests, rng), sizes)


def zipf_with_scans(objects: int, requests: int, seed: int, scans: int = 4) -> Workload:
    """Zipf 0.8 with `scans` full scans of a separate range of objects/2 keys, evenly spread."""
    rng = random.Random(f"scan-{seed}")
    scanned = objects // 2
    sizes = object_sizes(objects + scanned, rng)
    hot = zipf_keys(0.8, objects, requests - scans * scanned, rng)
    period = len(hot) // scans
    keys: list[int] = []
    for i in range(scans):
        keys += hot[i * period : (i + 1) * period]
        keys += range(objects, objects + scanned)
    keys += hot[scans * period :]
    return _workload("zipf-0.8+scans", keys, sizes)


def one_hit_wonders(objects: int, requests: int, seed: int, share: float = 0.5) -> Workload:
    """Zipf 0.8, with `share` of the requests going to keys that are never requested again."""
    rng = random.Random(f"ohw-{seed}")
    wonders = int(requests * share)
    sizes = object_sizes(objects + wonders, rng)
    hot = iter(zipf_keys(0.8, objects, requests - wonders, rng))
    fresh = iter(range(objects, objects + wonders))
    order = [True] * wonders + [False] * (requests - wonders)
    rng.shuffle(order)
    return _workload("one-hit-wonders", [next(fresh) if w else next(hot) for w in order], sizes)


def shifting(objects: int, requests: int, seed: int, phases: int = 4) -> Workload:
    """Zipf 0.8 whose popular set moves: in each of `phases` equal parts of the sequence the
    popularity ranks are drawn afresh over a window of half the objects that slides by a sixth
    of them per phase (four phases), so each phase keeps two thirds of the last one's objects."""
    rng = random.Random(f"shift-{seed}")
    span = objects // 2
    sizes = object_sizes(objects, rng)
    keys: list[int] = []
    for phase in range(phases):
        start = phase * (objects - span) // max(1, phases - 1)
        part = requests // phases if phase < phases - 1 else requests - len(keys)
        keys += (start + k for k in zipf_keys(0.8, span, part, rng))
    return _workload("zipf-0.8-shifting", keys, sizes)


WORKLOADS: dict[str, Callable[[int, int, int], Workload]] = {
    **{f"zipf-{alpha}": partial(zipf, alpha) for alpha in (0.6, 0.8, 1.0, 1.2)},
    "zipf-0.8+scans": zipf_with_scans,
    "one-hit-wonders": one_hit_wonders,
    "zipf-0.8-shifting": shifting,
}


TRACE_FORMATS = ("s3tier", "csv", "txt", "oracleGeneral")
# libCacheSim's binary oracleGeneral record, the format of its public trace collection:
# uint32 timestamp, uint64 object id, uint32 size, int64 next access (ignored: derived here).
ORACLE_GENERAL = struct.Struct("<IQIq")
CSV_COLUMNS = {  # the header names a csv trace may use for each field
    "time": ("time", "timestamp", "clock_time"),
    "key": ("key", "obj_id", "id"),
    "size": ("size", "obj_size"),
}


def _workload_of(name: str, requests: Iterable[tuple[float, object, int]]) -> Workload:
    """Number (key, size) pairs as objects: a key seen again with another size is a new object,
    as a new version is in s3tier. Requests of size 0 are skipped, as libCacheSim skips them."""
    ids: dict[tuple[object, int], int] = {}
    keys: list[int] = []
    sizes: list[int] = []
    times: list[float] = []
    for stamp, key, size in requests:
        if size == 0:
            continue
        keys.append(ids.setdefault((key, size), len(ids)))
        sizes.append(size)
        times.append(stamp)
    return Workload(name, tuple(keys), tuple(sizes), tuple(times))


def _s3tier_lines(lines: Iterable[str]) -> Iterator[tuple[float, object, int]]:
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            yield float(fields[0]), fields[1], _size(fields[2])
        except ValueError:
            raise ValueError(f"line {number}: not 'timestamp key size': {line!r}") from None


def _size(text: str) -> int:
    size = int(text)
    if size < 0:
        raise ValueError(text)
    return size


def _plain_lines(lines: Iterable[str]) -> Iterator[tuple[float, object, int]]:
    """libCacheSim's txt: one object id per line, no size (each request counts 1 byte)."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield float(number), line.strip(), 1


def _csv_lines(lines: Iterable[str]) -> Iterator[tuple[float, object, int]]:
    """time, key, size in that order, or in any order a first line of names says (CSV_COLUMNS)."""
    at = {"time": 0, "key": 1, "size": 2}
    first = True
    for number, row in enumerate(csv.reader(lines), 1):
        if not row or row[0].startswith("#"):
            continue
        if first:
            first = False
            names = [cell.strip().lower() for cell in row]
            found = {
                field: next((names.index(n) for n in aliases if n in names), -1)
                for field, aliases in CSV_COLUMNS.items()
            }
            if any(i >= 0 for i in found.values()):  # a header: then it must name every field
                missing = [field for field, i in found.items() if i < 0]
                if missing:
                    raise ValueError(f"line {number}: the header names no {', '.join(missing)}")
                at = found
                continue
        yield from _csv_row(number, row, at)


def _csv_row(
    number: int, row: list[str], at: dict[str, int]
) -> Iterator[tuple[float, object, int]]:
    try:
        yield float(row[at["time"]]), row[at["key"]].strip(), _size(row[at["size"]])
    except (ValueError, IndexError):
        raise ValueError(f"line {number}: not time, key, size: {row!r}") from None


def parse_trace(name: str, lines: Iterable[str]) -> Workload:
    """Lines of `timestamp key size`; blank lines and lines starting with # are skipped."""
    return _workload_of(name, _s3tier_lines(lines))


def read_trace(path: str, form: str = "s3tier") -> Workload:
    """A trace file in one of TRACE_FORMATS (oracleGeneral uncompressed: `zstd -d` it first)."""
    name = os.path.basename(path)
    if form == "oracleGeneral":
        with open(path, "rb") as file:
            data = file.read()
        if len(data) % ORACLE_GENERAL.size:
            raise ValueError(
                f"{name}: {len(data)} bytes is not a whole number of "
                f"{ORACLE_GENERAL.size}-byte oracleGeneral records (compressed? zstd -d it)"
            )
        records = ORACLE_GENERAL.iter_unpack(data)
        return _workload_of(name, ((float(t), k, size) for t, k, size, _ in records))
    readers = {"s3tier": _s3tier_lines, "csv": _csv_lines, "txt": _plain_lines}
    with open(path, encoding="utf-8", newline="") as lines:
        return _workload_of(name, readers[form](lines))


# --- replay ---------------------------------------------------------------------------------


def replay(policy: Policy, workload: Workload) -> Ratios:
    access, admit = policy.access, policy.admit
    hits = hit_bytes = 0
    for key, size, now in zip(workload.keys, workload.sizes, workload.times, strict=True):
        if access(key, size, now):
            hits += 1
            hit_bytes += size
        else:
            admit(key, size, now)
    return _ratios(workload, hits, hit_bytes)


def _ratios(workload: Workload, hits: int, hit_bytes: int) -> Ratios:
    total = sum(workload.sizes)
    return Ratios(hits / max(1, len(workload.keys)), hit_bytes / max(1, total))


def next_uses(keys: Sequence[int]) -> list[int]:
    """For each request, the index of the next request for the same key, or len(keys)."""
    following = [len(keys)] * len(keys)
    last: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        following[i] = last.get(keys[i], len(keys))
        last[keys[i]] = i
    return following


_Entry = tuple[float, int, int, int]  # (-priority, next use, key, size): heapq is a min-heap


def offline(workload: Workload, following: Sequence[int], capacity: int, by_size: bool) -> Ratios:
    """MIN (by_size=False) or Belady-Size (by_size=True), with bypass: a missed object is
    cached only if entries ranked worse than it free enough room, else nothing is evicted."""
    never = len(following)
    heap: list[_Entry] = []
    resident: dict[int, int] = {}  # key -> next use recorded in its live heap entry
    used = hits = hit_bytes = 0
    for now, (key, size) in enumerate(zip(workload.keys, workload.sizes, strict=True)):
        upcoming = following[now]
        if upcoming == never:
            rank = float("inf")  # never requested again: first to go
        else:
            rank = (upcoming - now) * size if by_size else upcoming
        entry = (-rank, upcoming, key, size)
        if key in resident:
            hits += 1
            hit_bytes += size
        elif upcoming == never or size > capacity:
            continue
        elif used + size > capacity:
            freed = _evict_worse(heap, resident, entry, used + size - capacity)
            if freed is None:
                continue
            used += size - freed
        else:
            used += size
        resident[key] = upcoming
        heapq.heappush(heap, entry)  # a hit leaves the old entry behind, stale
    return _ratios(workload, hits, hit_bytes)


def _evict_worse(
    heap: list[_Entry], resident: dict[int, int], than: _Entry, needed: int
) -> int | None:
    """Evict entries ranked worse than `than` until `needed` bytes are freed; the bytes freed.

    None, with nothing evicted, if all of them together would not free enough.
    """
    taken: list[_Entry] = []
    freed = 0
    while freed < needed and heap and heap[0] < than:
        entry = heapq.heappop(heap)
        if resident.get(entry[2]) == entry[1]:  # else stale: left behind by a later hit
            taken.append(entry)
            freed += entry[3]
    if freed < needed:
        for entry in taken:
            heapq.heappush(heap, entry)
        return None
    for entry in taken:
        del resident[entry[2]]
    return freed


def static(workload: Workload, capacity: int, by_size: bool) -> Ratios:
    """Static (by_size=False) or Static-Size (by_size=True): a greedy knapsack by request
    count (or count per byte), skipping what no longer fits; each chosen object misses once."""
    counts = Counter(workload.keys)
    size_of = dict(zip(workload.keys, workload.sizes, strict=True))
    ranked = sorted(counts, key=lambda k: counts[k] / size_of[k] if by_size else counts[k])
    free, hits, hit_bytes = capacity, 0, 0
    for key in reversed(ranked):
        if size_of[key] <= free:
            free -= size_of[key]
            hits += counts[key] - 1
            hit_bytes += (counts[key] - 1) * size_of[key]
    return _ratios(workload, hits, hit_bytes)


# --- the table ------------------------------------------------------------------------------


def simulate(
    workload: Workload, fractions: Sequence[float] = FRACTIONS, references: Sequence[str] = ()
) -> list[Row]:
    """Every policy and every offline schedule at each cache size, and the libCacheSim
    policies named in `references` (of `reference.POLICIES`; its offline ones join the bound)."""
    following = next_uses(workload.keys)
    working_set = workload.working_set_bytes
    rows = []
    for fraction in fractions:
        capacity = int(working_set * fraction)
        results = {name: replay(make(capacity), workload) for name, make in POLICIES.items()}
        for name in references if reference.accepts(capacity) else ():
            counts = reference.replay(name, workload.keys, workload.sizes, following, capacity)
            results[name] = _ratios(workload, *counts)
        results["MIN"] = offline(workload, following, capacity, by_size=False)
        results["Belady-Size"] = offline(workload, following, capacity, by_size=True)
        results["Static"] = static(workload, capacity, by_size=False)
        results["Static-Size"] = static(workload, capacity, by_size=True)
        bounds = [results[name] for name in bound_names(references) if name in results]
        best_objects = max(r.object_hit_ratio for r in bounds)
        results[OFFLINE] = Ratios(best_objects, max(r.byte_hit_ratio for r in bounds))
        rows.append(Row(workload.name, fraction, capacity, results))
    return rows


def bound_names(references: Iterable[str]) -> list[str]:
    """The offline schedules whose best is `offline`: ours and libCacheSim's among `references`."""
    return [*BOUNDS, *(name for name in references if name in reference.OFFLINE)]


def run_synthetic(
    objects: int, requests: int, seed: int, references: Sequence[str] = ()
) -> list[Row]:
    """The whole synthetic table."""
    return [
        row
        for make in WORKLOADS.values()
        for row in simulate(make(objects, requests, seed), references=references)
    ]


def online_names(rows: Sequence[Row]) -> list[str]:
    """The online policies of the table, s3tier's first, in the order they ran."""
    names = dict.fromkeys(name for row in rows for name in row.results) if rows else POLICIES
    return [n for n in names if n not in BOUNDS and n != OFFLINE and n not in reference.OFFLINE]


def markdown(rows: Sequence[Row], not_run: Mapping[str, str] | None = None) -> str:
    """One table: each cell is object hit % / byte hit %, and in brackets the byte hit points
    below the offline bound; the last column is s3tier's byte hit ratio minus the best other
    online policy's (positive: s3tier first)."""
    online = online_names(rows)
    ran = {name for row in rows for name in row.results}
    shown = [*online, *(n for n in reference.OFFLINE if n in ran), OFFLINE]
    header = ["workload", "cache", *shown, "s3tier - best other (bytes)"]
    lines = [
        "Cells: object hit % / byte hit % (byte hit points below offline).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * 2 + "--:|" * (len(shown) + 1),
    ]
    for row in rows:
        bound = row.results[OFFLINE].byte_hit_ratio
        cells = []
        for name in shown:
            r = row.results.get(name)
            if r is None:
                cells.append("—")  # libCacheSim could not run at this budget (see the note)
                continue
            cell = f"{r.object_hit_ratio * 100:.1f} / {r.byte_hit_ratio * 100:.1f}"
            gap = (bound - r.byte_hit_ratio) * 100
            cells.append(cell if name == OFFLINE else f"{cell} ({gap:.1f})")
        others = [row.results[n].byte_hit_ratio for n in online[1:] if n in row.results]
        lead = row.results["s3tier"].byte_hit_ratio - max(others, default=0.0)
        cells.append(f"{lead * 100:+.1f}")
        lines.append("| " + " | ".join([row.workload, f"{row.cache_fraction:.0%}", *cells]) + " |")
    if any(name not in row.results for row in rows for name in shown):
        lines.append(
            f"\n—: a budget below {reference.MIN_CAPACITY} bytes, too small for libCacheSim"
        )
    for name, why in (not_run or {}).items():
        lines.append(f"\nNot run: {name}: {why}")
    return "\n".join(lines) + "\n"


def csv_text(rows: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("workload", "cache_fraction", "capacity_bytes", "policy", *RATIOS))
    for row in rows:
        for policy, r in row.results.items():
            hit_ratios = f"{r.object_hit_ratio:.6f}", f"{r.byte_hit_ratio:.6f}"
            writer.writerow(
                (row.workload, row.cache_fraction, row.capacity_bytes, policy, *hit_ratios)
            )
    return out.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options; `s3tier simulate` declares the same ones."""
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--objects", type=int, default=20_000, help="distinct keys per workload")
    parser.add_argument("--requests", type=int, default=200_000, help="requests per workload")
    parser.add_argument("--quick", action="store_true", help="2,000 objects, 20,000 requests")
    parser.add_argument("--trace", metavar="FILE", help="replay this trace instead")
    parser.add_argument(
        "--trace-format",
        choices=TRACE_FORMATS,
        default="s3tier",
        help="s3tier: 'timestamp key size' lines; csv: time,key,size (or as a header names"
        " them); txt: one key per line (libCacheSim's); oracleGeneral: libCacheSim's binary",
    )
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    parser.add_argument(
        "--no-libcachesim",
        action="store_true",
        help="only s3tier's policy, LRU and the offline schedules (no libCacheSim columns)",
    )


def run(args: argparse.Namespace) -> int:
    wanted = [] if args.no_libcachesim else list(reference.POLICIES)
    not_run = reference.unavailable(wanted)
    references = [name for name in wanted if name not in not_run]
    if args.trace:
        rows = simulate(read_trace(args.trace, args.trace_format), references=references)
    elif args.quick:
        rows = run_synthetic(2_000, 20_000, args.seed, references)
    else:
        rows = run_synthetic(args.objects, args.requests, args.seed, references)
    if args.format == "markdown":
        sys.stdout.write(markdown(rows, not_run))
    else:
        sys.stdout.write(csv_text(rows))
        for name, why in not_run.items():
            sys.stderr.write(f"not run: {name}: {why}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tiering.simulate",
        description="Hit ratios of s3tier's policy, LRU and an offline bound (docs/policy.md).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
