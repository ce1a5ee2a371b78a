"""When a cached object must be revalidated with the upstream before it is served. Pure."""

from __future__ import annotations

from typing import Protocol


class FreshnessLike(Protocol):
    @property
    def mode(self) -> str: ...
    @property
    def ttl_s(self) -> float: ...


def is_fresh(freshness: FreshnessLike, validated_at: float, now: float) -> bool:
    """`immutable` never expires, `strict` is always stale, `ttl` expires ttl_s after validation."""
    if freshness.mode == "immutable":
        return True
    if freshness.mode == "strict":
        return False
    return now - validated_at < freshness.ttl_s
