"""The trace simulator: reproducible, complete, and its offline bound above every online policy."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from tiering import reference, simulate
from tiering.policy import LRUPolicy
from tiering.simulate import Ratios, Row, Workload

QUICK = (2_000, 20_000)  # what --quick runs: objects, requests
CACHES = ("1%", "5%", "10%", "25%")
REFERENCES = list(reference.POLICIES)  # libcachesim is a dev dependency: all of them run here


@pytest.fixture(scope="module")
def quick_rows() -> list[Row]:
    return simulate.run_synthetic(*QUICK, seed=1, references=REFERENCES)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert simulate.main(args) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def quick_output(quick_rows: list[Row]) -> dict[str, str]:
    """What `--quick` prints, as markdown and as csv, from the rows it computes."""
    return {"markdown": simulate.markdown(quick_rows), "csv": simulate.csv_text(quick_rows)}


def test_the_quick_run_prints_the_same_table_every_time(capsys: pytest.CaptureFixture[str]) -> None:
    # s3tier's columns and the offline schedules; libCacheSim's Belady-Size and W-TinyLFU draw
    # random samples and hash seeds of their own, and move by a few tenths from run to run.
    args = ["--quick", "--no-libcachesim"]
    assert run_main(args, capsys) == run_main(args, capsys)


def test_another_seed_gives_another_table(capsys: pytest.CaptureFixture[str]) -> None:
    seeds = [run_main(["--quick", "--no-libcachesim", "--seed", s], capsys) for s in "12"]
    assert seeds[0] != seeds[1]


def test_the_quick_table_has_a_row_for_every_workload_and_cache_size(
    quick_output: dict[str, str],
) -> None:
    lines = quick_output["markdown"].splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == [
        "workload", "cache", "s3tier", "LRU", *REFERENCES, "offline", "s3tier - best other (bytes)"
    ]  # fmt: skip
    cells = [line.strip("|").split("|") for line in lines[4:]]
    rows = [(cell[0].strip(), cell[1].strip()) for cell in cells]
    assert rows == list(itertools.product(simulate.WORKLOADS, CACHES))
    assert "Not run" not in "\n".join(lines)


def test_a_policy_the_binding_lacks_is_named_not_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = {"S3-FIFO": "S3FIFO", "LRB": "NoSuchPolicyInThisBinding"}
    monkeypatch.setattr(reference, "POLICIES", policies)
    out = run_main(["--quick"], capsys)
    assert "Not run: LRB: libcachesim " in out
    assert "has no NoSuchPolicyInThisBinding" in out
    assert "| S3-FIFO | offline |" in out  # the other still ran


def test_libcachesim_lru_gives_exactly_the_figures_of_s3tier_lru(quick_rows: list[Row]) -> None:
    # The same policy in two implementations on the same requests: the replay is faithful.
    for row in quick_rows:
        assert row.results["LRU (lcs)"] == row.results["LRU"], (row.workload, row.cache_fraction)


SHIFT_GAP = pytest.mark.xfail(
    strict=True,
    reason="issue 15, open: when the popular set moves, the sketch's stale counts keep the old"
    " set in main and s3tier falls below LRU at 10% and 25% (docs/policy.md)",
)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=SHIFT_GAP) if "shifting" in n else n for n in simulate.WORKLOADS],
)
def test_s3tier_policy_is_never_below_lru(quick_rows: list[Row], name: str) -> None:
    for row in (row for row in quick_rows if row.workload == name):
        ours, lru = row.results["s3tier"], row.results["LRU"]
        assert ours.byte_hit_ratio >= lru.byte_hit_ratio, (row.workload, row.cache_fraction)
        assert ours.object_hit_ratio >= lru.object_hit_ratio, (row.workload, row.cache_fraction)


def test_the_csv_has_every_policy_and_bound_on_every_row(quick_output: dict[str, str]) -> None:
    lines = quick_output["csv"].splitlines()
    assert (
        lines[0] == "workload,cache_fraction,capacity_bytes,policy,object_hit_ratio,byte_hit_ratio"
    )
    policies = Counter(line.split(",")[3] for line in lines[1:])
    names = [*simulate.POLICIES, *REFERENCES, *simulate.BOUNDS, simulate.OFFLINE]
    assert policies == dict.fromkeys(names, len(simulate.WORKLOADS) * len(CACHES))


def test_the_offline_bound_is_never_below_an_online_policy(quick_rows: list[Row]) -> None:
    for row in quick_rows:
        bound = row.results[simulate.OFFLINE]
        for policy in simulate.online_names([row]):
            online = row.results[policy]
            assert bound.object_hit_ratio >= online.object_hit_ratio, (row.workload, policy)
            assert bound.byte_hit_ratio >= online.byte_hit_ratio, (row.workload, policy)


def test_the_offline_bound_is_the_best_of_the_offline_schedules(quick_rows: list[Row]) -> None:
    for row in quick_rows:
        schedules = [row.results[name] for name in simulate.bound_names(REFERENCES)]
        assert row.results[simulate.OFFLINE] == Ratios(
            max(r.object_hit_ratio for r in schedules), max(r.byte_hit_ratio for r in schedules)
        )


def test_cache_sizes_are_fractions_of_the_working_set(quick_rows: list[Row]) -> None:
    workload = simulate.WORKLOADS["zipf-1.0"](*QUICK, 1)
    rows = [row for row in quick_rows if row.workload == "zipf-1.0"]
    expected = [int(workload.working_set_bytes * f) for f in simulate.FRACTIONS]
    assert [row.capacity_bytes for row in rows] == expected


def pair(ratios: Ratios) -> tuple[float, float]:
    return ratios.object_hit_ratio, ratios.byte_hit_ratio


def workload(keys: str, sizes: dict[str, int]) -> Workload:
    names = keys.split()
    return Workload(
        "test",
        tuple(ord(k) for k in names),
        tuple(sizes[k] for k in names),
        tuple(map(float, range(len(names)))),
    )


@pytest.mark.parametrize(
    ("keys", "sizes", "capacity", "by_size", "ratios"),
    [
        pytest.param(
            "a b c a b c",
            dict.fromkeys("abc", 1),
            2,
            False,
            Ratios(2 / 6, 2 / 6),
            id="min_keeps_what_returns_soonest_and_passes_the_rest_through",
        ),
        pytest.param(
            "a b a b",
            {"a": 3, "b": 1},
            3,
            False,
            Ratios(1 / 4, 3 / 8),
            id="min_keeps_the_big_object_that_returns_first",
        ),
        pytest.param(
            "a b a b",
            {"a": 3, "b": 1},
            3,
            True,
            Ratios(1 / 4, 1 / 8),
            id="belady_size_trades_the_big_object_for_the_small_one",
        ),
        pytest.param(
            "a b c a b c",
            {"a": 2, "b": 1, "c": 1},
            2,
            False,
            Ratios(1 / 6, 2 / 8),
            id="min_keeps_one_big_object_returning_first",
        ),
        pytest.param(
            "a b c a b c",
            {"a": 2, "b": 1, "c": 1},
            2,
            True,
            Ratios(2 / 6, 2 / 8),
            id="belady_size_keeps_two_small_objects_in_its_place",
        ),
    ],
)
def test_offline_schedules_on_small_sequences(
    keys: str, sizes: dict[str, int], capacity: int, by_size: bool, ratios: Ratios
) -> None:
    trace = workload(keys, sizes)
    result = simulate.offline(trace, simulate.next_uses(trace.keys), capacity, by_size)
    assert pair(result) == pytest.approx(pair(ratios))


@pytest.mark.parametrize(
    ("by_size", "ratios"),
    [
        pytest.param(False, Ratios(4 / 9, 12 / 19), id="static_keeps_the_most_requested"),
        pytest.param(
            True, Ratios(3 / 9, 3 / 19), id="static_size_keeps_the_most_requested_per_byte"
        ),
    ],
)
def test_static_schedules_fill_the_cache_greedily(by_size: bool, ratios: Ratios) -> None:
    trace = workload("a a a a b b b b b", {"a": 1, "b": 3})
    assert pair(simulate.static(trace, 3, by_size)) == pytest.approx(pair(ratios))


def test_the_trace_reader_numbers_objects_and_skips_comments() -> None:
    lines = [
        "# time key size",
        "0.5 photos/a.jpg 100",
        "",
        "1.5 photos/b.jpg 20",
        "2 photos/a.jpg 100",
    ]
    lines.append("3 photos/a.jpg 120")  # the same key with another size: a new version
    trace = simulate.parse_trace("t", lines)
    assert trace == Workload("t", (0, 1, 0, 2), (100, 20, 100, 120), (0.5, 1.5, 2.0, 3.0))


@pytest.mark.parametrize("line", ["1 key", "1 key 10 extra", "soon key 10", "1 key big"])
def test_the_trace_reader_names_the_line_it_cannot_read(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        simulate.parse_trace("t", ["0 a 1", line])


def test_a_trace_file_is_replayed_at_every_cache_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "small.trace"
    requests = [f"{t} key{t % 50 if t % 3 else t} {1000 + t % 50}" for t in range(2000)]
    trace.write_text("\n".join(requests) + "\n")
    lines = run_main(["--trace", str(trace), "--format", "csv"], capsys)
    fractions = {line.split(",")[1] for line in lines.splitlines()[1:]}
    assert fractions == {str(f) for f in simulate.FRACTIONS}
    assert {line.split(",")[0] for line in lines.splitlines()[1:]} == {"small.trace"}


def test_replaying_a_trace_counts_hits_and_hit_bytes() -> None:
    trace = simulate.parse_trace("t", ["0 a 10", "1 a 10", "2 b 30", "3 a 10"])
    assert simulate.replay(LRUPolicy(40), trace) == Ratios(2 / 4, 20 / 60)


def test_generated_workloads_draw_sizes_between_4_kib_and_64_mib() -> None:
    for make in simulate.WORKLOADS.values():
        sizes = make(*QUICK, 1).sizes
        assert min(sizes) >= 4 << 10
        assert max(sizes) <= 64 << 20


def test_one_hit_wonders_are_never_requested_again() -> None:
    trace = simulate.one_hit_wonders(*QUICK, seed=1)
    counts = Counter(trace.keys)
    wonders = [key for key in counts if key >= QUICK[0]]
    assert len(wonders) == QUICK[1] // 2
    assert all(counts[key] == 1 for key in wonders)


def test_the_scan_workload_reads_its_whole_separate_range_four_times() -> None:
    objects, requests = QUICK
    trace = simulate.zipf_with_scans(objects, requests, seed=1)
    scanned = Counter(key for key in trace.keys if key >= objects)
    assert len(trace.keys) == requests
    assert scanned == dict.fromkeys(range(objects, objects + objects // 2), 4)


def test_the_shifting_workload_moves_its_popular_set_by_phase() -> None:
    objects, requests = QUICK
    trace = simulate.shifting(objects, requests, seed=1)
    phase = requests // 4
    windows = [set(trace.keys[i * phase : (i + 1) * phase]) for i in range(4)]
    spans = [(min(w), max(w)) for w in windows]
    assert spans[0][0] >= 0 and spans[-1][1] < objects
    assert [low for low, _ in spans] == sorted(low for low, _ in spans)  # it moves one way
    for before, after in itertools.pairwise(windows):
        kept = len(before & after) / len(before)
        assert 0.2 < kept < 0.9, kept  # each phase keeps part of the last, and brings new keys


def oracle_general(path: Path, requests: list[tuple[int, int, int]]) -> None:
    """Write (time, id, size) requests as libCacheSim's binary oracleGeneral records."""
    path.write_bytes(b"".join(simulate.ORACLE_GENERAL.pack(t, k, s, -1) for t, k, s in requests))


def test_an_oracle_general_trace_replays_as_libcachesim_reads_it(tmp_path: Path) -> None:
    # The same file through libCacheSim's own reader and LRU, and through ours and LRUPolicy:
    # the same miss ratios show the binary records are read as libCacheSim reads them.
    import libcachesim as lcs

    rng = random.Random(7)
    sizes = {k: rng.randrange(1, 5000) for k in range(300)}
    ids = [min(int(rng.paretovariate(1.1)), 299) for _ in range(5000)]
    trace = tmp_path / "t.oracleGeneral.bin"
    oracle_general(trace, [(i, k, sizes[k]) for i, k in enumerate(ids)])
    workload = simulate.read_trace(str(trace), "oracleGeneral")
    assert workload.keys[:3] == (0, 1, 2) or len(set(workload.keys)) == len(set(ids))
    assert workload.sizes == tuple(sizes[k] for k in ids)
    capacity = sum(sizes.values()) // 10
    theirs = lcs.LRU(cache_size=capacity, hashpower=16).process_trace(
        lcs.TraceReader(str(trace), lcs.TraceType.ORACLE_GENERAL_TRACE)
    )
    ours = simulate.replay(LRUPolicy(capacity), workload)
    assert theirs == pytest.approx((1 - ours.object_hit_ratio, 1 - ours.byte_hit_ratio))


def test_a_truncated_oracle_general_trace_is_refused_by_name(tmp_path: Path) -> None:
    trace = tmp_path / "cut.bin"
    oracle_general(trace, [(0, 1, 10), (1, 2, 10)])
    trace.write_bytes(trace.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut\.bin: 43 bytes is not a whole number"):
        simulate.read_trace(str(trace), "oracleGeneral")


def test_csv_traces_are_read_in_order_or_as_their_header_names_the_columns(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("0,a,10\n1,b,20\n2,a,10\n")
    named = tmp_path / "named.csv"
    named.write_text("obj_size,obj_id,timestamp\n10,a,0\n20,b,1\n10,a,2\n")
    expected = ((0, 1, 0), (10, 20, 10), (0.0, 1.0, 2.0))
    for path in (plain, named):
        trace = simulate.read_trace(str(path), "csv")
        assert (trace.keys, trace.sizes, trace.times) == expected
    bad = tmp_path / "bad.csv"
    bad.write_text("time,key\n0,a\n")
    with pytest.raises(ValueError, match="line 1: the header names no size"):
        simulate.read_trace(str(bad), "csv")
    bad.write_text("0,a,10\n1,b,-3\n")
    with pytest.raises(ValueError, match="line 2"):
        simulate.read_trace(str(bad), "csv")


def test_a_plain_text_trace_is_one_key_per_line_of_one_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("a\nb\n\na\nc\na\n")
    trace = simulate.read_trace(str(path), "txt")
    assert (trace.keys, trace.sizes) == ((0, 1, 0, 2, 0), (1,) * 5)
    out = run_main(["--trace", str(path), "--trace-format", "txt", "--format", "csv"], capsys)
    assert {line.split(",")[0] for line in out.splitlines()[1:]} == {"keys.txt"}
