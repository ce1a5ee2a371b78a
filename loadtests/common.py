"""What the locustfiles, the seeder and the driver agree on: options, datasets and key choice.

A dataset is derived, not stored: the same (bucket, prefix, object count, sizes, seed) always
gives the same keys and sizes, so `seed.py` can create the objects and a locustfile can ask for
them without a manifest or a listing. Every option is also an environment variable
(`LOADTEST_*`), read by locust's parser and by `seed.py` alike.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config.settings import format_size, parse_size

KiB = 1024
MiB = 1024 * KiB

# The cache-status table (cachestats.py writes it, summary.py reads it): (key, column title).
CACHE_COLUMNS = (
    ("name", "Name"),
    ("status", "Cache status"),
    ("requests", "Requests"),
    ("request_share", "Request share"),
    ("bytes", "Bytes"),
    ("byte_share", "Byte share"),
    ("avg_ms", "Average (ms)"),
    ("p50_ms", "50%ile (ms)"),
    ("p95_ms", "95%ile (ms)"),
    ("p99_ms", "99%ile (ms)"),
    ("max_ms", "Max (ms)"),
)
CACHE_TITLES = dict(CACHE_COLUMNS)
HITS = ("HIT-RAM", "HIT-DISK")  # X-Cache-Status values served with no upstream request at all
HIT_ROW = "HIT (RAM+DISK)"  # the subtotal row whose request share is the hit ratio
AGGREGATED = "Aggregated"  # the name of the rows over all request names


@dataclass(frozen=True, slots=True)
class Defaults:
    """A workload's dataset when no option says otherwise."""

    prefix: str
    objects: int
    min_size: str
    max_size: str


# One prefix per workload, so one bucket can hold every dataset without overlap.
WORKLOADS: dict[str, Defaults] = {
    "hot_set": Defaults("hot/", 500, "4KiB", "4MiB"),
    "parquet_ranges": Defaults("parquet/", 8, "8MiB", "32MiB"),
    "read_mostly": Defaults("rw/", 500, "4KiB", "1MiB"),
    "cold_scan": Defaults("scan/", 2000, "4KiB", "1MiB"),
}


@dataclass(frozen=True, slots=True)
class Option:
    """One command-line option, also read from an environment variable.

    A `default` of None comes from the workload's `Defaults`. Dataset options stay out of the
    web UI's start form: changing them there would ask for objects that were never seeded.
    """

    flag: str
    env_var: str
    default: Any
    help: str
    in_web_ui: bool = True


DATASET_OPTIONS = (
    Option("--bucket", "LOADTEST_BUCKET", "loadtest", "bucket holding the objects", False),
    Option("--prefix", "LOADTEST_PREFIX", None, "key prefix of this workload's objects", False),
    Option("--objects", "LOADTEST_OBJECTS", None, "number of objects", False),
    Option("--min-size", "LOADTEST_MIN_SIZE", None, "smallest object, e.g. 4KiB", False),
    Option("--max-size", "LOADTEST_MAX_SIZE", None, "largest object (log-uniform sizes)", False),
    Option("--seed", "LOADTEST_SEED", 1, "seed of sizes, contents and key choice", False),
)


ZIPF_ALPHA = Option(
    "--zipf-alpha", "LOADTEST_ZIPF_ALPHA", 0.9, "key popularity skew: 0 uniform, about 1 web-like"
)


def add_options(parser: Any, workload: str, *extra: Option) -> None:
    """Register the dataset options and a workload's `extra` ones on a configargparse parser.

    Locust's own parser is one, so these show in `locust --help`, read `LOADTEST_*` from the
    environment, and (the workload's own knobs) appear in the web UI's start form.
    """
    defaults = WORKLOADS[workload]
    for option in (*DATASET_OPTIONS, *extra):
        default = option.default
        if default is None:
            default = getattr(defaults, option.flag.removeprefix("--").replace("-", "_"))
        kind = type(default) if isinstance(default, int | float) else str
        kwargs: dict[str, Any] = {"env_var": option.env_var, "default": default, "type": kind}
        if hasattr(parser, "args_included_in_web_ui"):  # locust's parser, not the seeder's
            kwargs["include_in_web_ui"] = option.in_web_ui
        # configargparse appends "[env var: ...]" to the help itself.
        parser.add_argument(option.flag, help=option.help, **kwargs)


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Dataset:
    """The objects of one workload: keys `<prefix>000000`.. with log-uniform sizes."""

    bucket: str
    prefix: str
    objects: int
    min_size_bytes: int
    max_size_bytes: int
    seed: int

    @classmethod
    def from_options(cls, options: Any) -> Dataset:
        dataset = cls(
            bucket=options.bucket,
            prefix=options.prefix,
            objects=int(options.objects),
            min_size_bytes=parse_size(options.min_size),
            max_size_bytes=parse_size(options.max_size),
            seed=int(options.seed),
        )
        if dataset.objects < 1 or not 0 < dataset.min_size_bytes <= dataset.max_size_bytes:
            raise ValueError(f"need objects >= 1 and 0 < min-size <= max-size, got {dataset}")
        return dataset

    def specs(self) -> tuple[ObjectSpec, ...]:
        return _specs(self)

    def path(self, key: str) -> str:
        """The path-style request path of a key (keys here need no escaping)."""
        return f"/{self.bucket}/{key}"


@functools.cache
def _specs(dataset: Dataset) -> tuple[ObjectSpec, ...]:
    rng = random.Random(f"{dataset.seed}:{dataset.prefix}")
    low, high = math.log(dataset.min_size_bytes), math.log(dataset.max_size_bytes)
    return tuple(
        ObjectSpec(f"{dataset.prefix}{index:06d}", round(math.exp(rng.uniform(low, high))))
        for index in range(dataset.objects)
    )


def object_bytes(dataset: Dataset, spec: ObjectSpec) -> bytes:
    """The seeded contents of one object: the same bytes, hence the same ETag, on every run."""
    return random.Random(f"{dataset.seed}:{spec.key}").randbytes(spec.size)


class Zipf:
    """Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1) ** alpha.

    alpha = 0 is uniform; about 1 is the skew measured for web and object-store caches.
    """

    def __init__(self, n: int, alpha: float) -> None:
        self._cdf = _zipf_cdf(n, alpha)

    def sample(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cdf, rng.random() * self._cdf[-1])


@functools.cache
def _zipf_cdf(n: int, alpha: float) -> Sequence[float]:
    return list(itertools.accumulate((rank + 1) ** -alpha for rank in range(n)))


# Latency depends on size more than on anything else, so reads are named by size class.
_SIZE_CLASSES = (64 * KiB, MiB, 16 * MiB)


def size_class(size: int) -> str:
    """`<64KiB`, `64KiB-1MiB`, `1MiB-16MiB` or `>=16MiB`."""
    index = bisect.bisect_right(_SIZE_CLASSES, size)
    if index == 0:
        return f"<{format_size(_SIZE_CLASSES[0])}"
    if index == len(_SIZE_CLASSES):
        return f">={format_size(_SIZE_CLASSES[-1])}"
    return f"{format_size(_SIZE_CLASSES[index - 1])}-{format_size(_SIZE_CLASSES[index])}"
