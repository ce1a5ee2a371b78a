"""Size settings that follow one another: derived defaults, and the pairs that may not disagree.

A user who sets one size must never be stopped by the default of another. So a size the user
left unset is derived from the sizes in force (given or default), and a conflict is raised only
between values the user gave, with a message naming both::

    setting          when left unset
    ram_max_object   a quarter of ram_bytes, at most 16MiB
    put_cache_max    a quarter of disk_bytes, at most 64MiB, and at least ram_max_object (RAM on)
    prefetch_bytes   a quarter of ram_bytes + disk_bytes / workers, at most 64MiB

    conflict, only when the user gave both sides
    ram_max_object > ram_bytes            while RAM is on
    put_cache_max  > disk_bytes           while the disk tier is on
    prefetch_bytes > ram_bytes + disk_bytes
    0 < prefetch_bytes < block_size

Why a quarter: the largest thing a tier takes in at once (an object in RAM, a PUT body, the
read-ahead in flight) then leaves three quarters of it to what is already cached, so one large
object cannot flush the hot set. The caps are the defaults that held before the rules, so the
defaults of a default install do not move. RAM and the read-ahead budget are per worker process;
the disk tier is one folder shared by all of them, hence ``disk_bytes / workers``.

Pure functions of plain values: no I/O, nothing about where a value came from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from config.parsers import MiB

Sizes = Mapping[str, int]  # setting name (its YAML key) -> value in force


@dataclass(frozen=True, slots=True)
class Derivation:
    """A setting whose default follows other settings."""

    name: str
    rule: str  # the rule in words, as --help and the README state it
    derive: Callable[[Sizes], int]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two settings that cannot both hold; raised only when the user gave every one of them."""

    name: str
    others: tuple[str, ...]  # summed when more than one
    relation: str  # how `name` breaks the bound: "exceeds", "is less than"
    broken: Callable[[Sizes], bool]
    why: str


def _ram_max_object(s: Sizes) -> int:
    return min(16 * MiB, s["ram_bytes"] // 4)


def _put_cache_max(s: Sizes) -> int:
    # With the disk tier off, a body no larger than RAM would take is still worth keeping.
    in_ram = s["ram_max_object"] if s["ram_bytes"] else 0
    return max(min(64 * MiB, s["disk_bytes"] // 4), in_ram)


def _prefetch_bytes(s: Sizes) -> int:
    # Prefetched blocks land in RAM and on disk; every worker has its own budget.
    return min(64 * MiB, (s["ram_bytes"] + s["disk_bytes"] // s["workers"]) // 4)


# In order: put_cache_max reads ram_max_object as derived.
DERIVATIONS: tuple[Derivation, ...] = (
    Derivation("ram_max_object", "a quarter of --ram-bytes, at most 16MiB", _ram_max_object),
    Derivation("put_cache_max",
               "a quarter of --disk-bytes, at most 64MiB, and at least --ram-max-object "
               "while RAM is on", _put_cache_max),
    Derivation("prefetch_bytes",
               "a quarter of --ram-bytes + --disk-bytes / --workers, at most 64MiB",
               _prefetch_bytes),
)  # fmt: skip
DERIVED: Mapping[str, Derivation] = {d.name: d for d in DERIVATIONS}


def _within_tier(name: str, tier: str, what: str) -> Conflict:
    """``name`` may not exceed a tier's capacity while the tier is on."""
    flag = "--" + tier.replace("_", "-")
    why = f"{what}; lower it, or leave it unset to follow {flag}"
    return Conflict(name, (tier,), "exceeds", lambda s: 0 < s[tier] < s[name], why)


CONFLICTS: tuple[Conflict, ...] = (
    _within_tier("ram_max_object", "ram_bytes",
                 "an object larger than the whole RAM tier would push everything else out of it"),
    _within_tier("put_cache_max", "disk_bytes",
                 "a PUT body larger than the whole disk tier could never be kept"),
    Conflict("prefetch_bytes", ("ram_bytes", "disk_bytes"), "exceeds",
             lambda s: s["prefetch_bytes"] > s["ram_bytes"] + s["disk_bytes"],
             "read-ahead in flight larger than the whole cache would push out what it fetched "
             "before anyone read it; lower it, or leave it unset to follow the cache"),
    Conflict("prefetch_bytes", ("block_size",), "is less than",
             lambda s: 0 < s["prefetch_bytes"] < s["block_size"],
             "read-ahead fetches whole blocks, so it could never start; "
             "raise it, or set 0 to turn read-ahead off"),
)  # fmt: skip

# Every setting the rules read.
INPUTS: frozenset[str] = frozenset(
    {"ram_bytes", "disk_bytes", "workers", "block_size"}
    | set(DERIVED)
    | {other for conflict in CONFLICTS for other in conflict.others}
)


def derive(sizes: Sizes, given: Collection[str]) -> dict[str, int]:
    """``sizes`` with every derived setting the user did not give replaced by its rule."""
    resolved = dict(sizes)
    for derivation in DERIVATIONS:
        if derivation.name not in given:
            resolved[derivation.name] = derivation.derive(resolved)
    return resolved


def conflicts(sizes: Sizes, given: Collection[str]) -> list[Conflict]:
    """The conflicts among ``sizes`` between settings that are all in ``given``."""
    return [
        conflict
        for conflict in CONFLICTS
        if {conflict.name, *conflict.others} <= set(given) and conflict.broken(sizes)
    ]
