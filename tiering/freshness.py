"""Freshness: how long a cached copy may be served without asking the upstream. Pure values.

The settings parse these once; the read path asks `is_fresh` for each cached object it serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

FreshnessMode = Literal["strict", "ttl", "immutable"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """How long a cached object may be served without asking the upstream whether it changed.

    ``strict`` revalidates on every request, ``ttl`` trusts a copy for ``ttl_s`` seconds after it
    was fetched or revalidated, ``immutable`` never revalidates (keys that are never overwritten).
    """

    mode: FreshnessMode
    ttl_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("strict", "ttl", "immutable"):
            raise ValueError(f"unknown freshness mode {self.mode!r}")
        if not (math.isfinite(self.ttl_s) and self.ttl_s >= 0):
            raise ValueError(f"ttl must be a non-negative number of seconds, not {self.ttl_s!r}")

    @classmethod
    def parse(cls, text: str) -> Freshness:
        """``"strict"``, ``"immutable"`` or ``"ttl:SECONDS"`` (e.g. ``ttl:5``, ``ttl:0.5``)."""
        word, colon, seconds = text.strip().partition(":")
        if not colon and word.lower() in ("strict", "immutable"):
            return cls(mode="strict") if word.lower() == "strict" else cls(mode="immutable")
        if colon and word.lower() == "ttl":
            return cls(mode="ttl", ttl_s=_non_negative_seconds(seconds, text))
        raise ValueError(f"{text!r} is not a freshness (use strict, immutable or ttl:SECONDS)")

    def __str__(self) -> str:
        if self.mode != "ttl":
            return self.mode
        return f"ttl:{int(self.ttl_s) if self.ttl_s.is_integer() else self.ttl_s}"


def _non_negative_seconds(seconds: str, text: str) -> float:
    try:
        value = float(seconds)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{text!r}: the ttl must be a non-negative number of seconds")
    return value


@dataclass(frozen=True, slots=True)
class FreshnessRule:
    """Freshness for the keys of ``bucket`` that start with ``prefix`` ("" = the whole bucket)."""

    bucket: str
    prefix: str
    freshness: Freshness


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    """A default freshness plus per-bucket, per-prefix exceptions."""

    default: Freshness
    rules: tuple[FreshnessRule, ...] = ()

    def for_key(self, bucket: str, key: str) -> Freshness:
        """The rule with the longest prefix matching ``key`` in ``bucket``, else the default."""
        matches = [r for r in self.rules if r.bucket == bucket and key.startswith(r.prefix)]
        if not matches:
            return self.default
        return max(matches, key=lambda rule: len(rule.prefix)).freshness

    def to_json(self) -> dict[str, object]:
        """The YAML mapping form, for logs."""
        rules = [{"bucket": r.bucket, "prefix": r.prefix, "mode": str(r.freshness)}
                 for r in self.rules]  # fmt: skip
        return {"default": str(self.default), "rules": rules}

    def __str__(self) -> str:
        return str(self.default) + (f" (+{len(self.rules)} rules)" if self.rules else "")


DEFAULT_FRESHNESS = Freshness("ttl", 5.0)


def is_fresh(freshness: Freshness, validated_at: float, now: float) -> bool:
    """`immutable` never expires, `strict` is always stale, `ttl` expires ttl_s after validation."""
    if freshness.mode == "immutable":
        return True
    if freshness.mode == "strict":
        return False
    return now - validated_at < freshness.ttl_s
