"""The published policies beside s3tier's, as libCacheSim implements them, on the same requests.

`s3tier simulate` compares s3tier's policy with what cache engineers compare against today:
S3-FIFO (SOSP 2023), SIEVE (NSDI 2024), ARC, LIRS and W-TinyLFU, as their authors published
them in libCacheSim (Yang et al.), and libCacheSim's own LRU and Belady. The same requests go
through them as through `tiering.policy`, byte-sized, so a figure here and a figure there are
the same quantity. libCacheSim's LRU must give exactly the figures of `LRUPolicy` on every
workload (`tests/test_simulate.py`): that is the check that the replay feeds libCacheSim what
s3tier's policies see.

libcachesim (PyPI) is a simulation dependency, the `sim` extra, never a runtime one: this module
imports it only when asked, and where it or one of its policies is missing the table says so.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

# Column name -> libcachesim class. Belady here is libCacheSim's size-aware BeladySize: plain
# Belady's MIN ignores sizes, which `tiering.simulate` runs itself among its offline schedules.
POLICIES: dict[str, str] = {
    "LRU (lcs)": "LRU",
    "S3-FIFO": "S3FIFO",
    "SIEVE": "Sieve",
    "ARC": "ARC",
    "LIRS": "LIRS",
    "W-TinyLFU": "WTinyLFU",
    "Belady-Size (lcs)": "BeladySize",
}
OFFLINE = frozenset({"Belady-Size (lcs)"})  # knows the future: a bound, not a contender
HASH_POWER = 20  # libCacheSim's default 24 allocates 16 M buckets per cache, for nothing here
# W-TinyLFU sizes its count-min sketch from the capacity as if it counted objects, in a 32-bit
# int: above 2 GiB it overflows (saying so on stdout) and runs with a 40-counter sketch; below,
# it allocates about 30 bytes per unit of capacity (480 MB at 2^24). It gets sizes and capacity
# in the smallest power-of-two unit that keeps the capacity within 2^24 units, sizes rounded up
# (2 KiB units at the default table's largest budget, whose smallest objects are 4 KiB).
SKETCH_LIMIT = {"W-TinyLFU": 1 << 24}
# libCacheSim aborts the whole process on budgets too small for its segments (S3-FIFO below 10
# bytes, its small queue being 10%; W-TinyLFU below 5): below this none of its policies is run,
# and the table shows the cell as not run.
MIN_CAPACITY = 100


def accepts(capacity: int) -> bool:
    """Whether libCacheSim's policies can run at `capacity` bytes without aborting."""
    return capacity >= MIN_CAPACITY


def missing() -> str | None:
    """Why libCacheSim cannot run here, or None when it can."""
    try:
        importlib.import_module("libcachesim")
    except ImportError as error:
        return f"libcachesim is not installed ({error}); pip install 's3tier[sim]'"
    return None


def unavailable(names: Sequence[str]) -> dict[str, str]:
    """The columns of `names` this libcachesim lacks, each with the reason."""
    reason = missing()
    if reason is not None:
        return dict.fromkeys(names, reason)
    lcs = importlib.import_module("libcachesim")
    return {
        name: f"libcachesim {lcs.__version__} has no {POLICIES[name]}"
        for name in names
        if not hasattr(lcs, POLICIES[name])
    }


def replay(
    name: str,
    keys: Sequence[int],
    sizes: Sequence[int],
    following: Sequence[int],
    capacity: int,
) -> tuple[int, int]:
    """(hits, hit bytes) of libCacheSim's policy `name` over the requests, at `capacity` bytes.

    `following[i]` is the index of the next request for `keys[i]`, or len(keys) for none (as
    `tiering.simulate.next_uses` computes it): only the offline policies read it.
    """
    lcs: Any = importlib.import_module("libcachesim")
    unit = 1
    while capacity // unit > SKETCH_LIMIT.get(name, capacity):
        unit *= 2
    cache = getattr(lcs, POLICIES[name])(cache_size=capacity // unit, hashpower=HASH_POWER)
    request = lcs.Request()
    get = cache.get
    never = len(keys)
    hits = hit_bytes = 0
    # Virtual time counts from 1 (libCacheSim's request counter is 1 while it handles the first
    # request), so a next use is always later than the request being handled; -1 is "never".
    for vtime, (key, size, upcoming) in enumerate(zip(keys, sizes, following, strict=True), 1):
        request.obj_id = key
        request.obj_size = -(-size // unit)
        request.clock_time = vtime
        request.next_access_vtime = -1 if upcoming == never else upcoming + 1
        if get(request):
            hits += 1
            hit_bytes += size
    return hits, hit_bytes
