"""Value parsers for settings: each turns what a flag, an S3TIER_* variable or a YAML key gave
into a typed value, or raises ValueError with a reason that leaves out the setting's name (the
caller prefixes it, since only the caller knows where the value came from).

Sizes are parsed here too, with their units: KB/MB/... decimal, KiB/MiB/... binary. This module
does no I/O.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
from collections.abc import Callable
from fractions import Fraction
from urllib.parse import urlsplit

from tiering.freshness import DEFAULT_FRESHNESS, Freshness, FreshnessPolicy, FreshnessRule
from tiering.members import MemberSource

KiB = 2**10
MiB = 2**20
GiB = 2**30


# --- sizes -----------------------------------------------------------------------------------

# KB/MB/... are decimal and KiB/MiB/... binary (IEC 80000-13), as disk vendors use them.
_SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
# Digits are capped so that absurd input gets this module's message, not int()'s digit limit.
_SIZE_RE = re.compile(r"(\d{1,20}(?:\.\d{1,20})?|\.\d{1,20})\s*([a-z]*)", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from ``"64MiB"``, ``"1.5GiB"``, ``"10GB"`` (10**9), ``"4096"`` or a plain int."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or match[2].lower() not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (use e.g. 64MiB, 10GiB)")
    size = Fraction(match[1]) * _SIZE_UNITS[match[2].lower()]  # exact: 1.5GiB has no float error
    if size.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(size)


def format_size(size_bytes: int) -> str:
    """The largest binary unit that states ``size_bytes`` exactly: 268435456 -> "256MiB"."""
    for unit, factor in (("TiB", 2**40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size_bytes and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"


# --- freshness rules from YAML -----------------------------------------------------------


def freshness_policy(raw: object) -> FreshnessPolicy:
    """From ``"ttl:30"`` (a default only) or the YAML mapping ``{default, rules}``."""
    if isinstance(raw, str):
        return FreshnessPolicy(Freshness.parse(raw))
    entries = mapping(raw, "freshness", allowed=("default", "rules"))
    default_text = _string(entries.get("default", str(DEFAULT_FRESHNESS)), "default")
    default = Freshness.parse(default_text)
    rules_raw = entries.get("rules") or []
    if not isinstance(rules_raw, list):
        raise ValueError("'rules' must be a list of {bucket, prefix, mode} mappings")
    rules = tuple(_rule(rule, index) for index, rule in enumerate(rules_raw))
    _reject_duplicate_rules(rules)
    return FreshnessPolicy(default, rules)


_RULE_KEYS = ("bucket", "prefix", "mode")


def _rule(raw: object, index: int) -> FreshnessRule:
    where = f"rules[{index}]"
    entries = mapping(raw, where, allowed=_RULE_KEYS)
    bucket = _string(entries.get("bucket"), f"{where}.bucket")
    if not bucket:
        raise ValueError(f"{where}.bucket must not be empty")
    prefix = _string(entries.get("prefix", ""), f"{where}.prefix")
    freshness = Freshness.parse(_string(entries.get("mode"), f"{where}.mode"))
    return FreshnessRule(bucket, prefix, freshness)


def _reject_duplicate_rules(rules: tuple[FreshnessRule, ...]) -> None:
    # Two rules for one (bucket, prefix) would make the winner depend on list order.
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        if (rule.bucket, rule.prefix) in seen:
            raise ValueError(f"two rules for bucket {rule.bucket!r} prefix {rule.prefix!r}")
        seen.add((rule.bucket, rule.prefix))


# --- YAML shape helpers ----------------------------------------------------------------------


def mapping(raw: object, where: str, allowed: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        raise ValueError(f"{where} must be a mapping with keys {', '.join(allowed)}")
    for key in raw:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}{_did_you_mean(key, allowed)}")
    return raw


def _did_you_mean(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _string(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{where} must be a string, not {raw!r}")
    return raw


# --- value parsers, one per kind of setting ---------------------------------------------------


def text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{raw!r} is not a non-empty string")
    return raw.strip()


def whole(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", raw):
        return int(raw)
    raise ValueError(f"{raw!r} is not a whole number")


def port(raw: object) -> int:
    number = whole(raw)
    if not 0 <= number <= 65535:
        raise ValueError(f"{number} is not a port (0..65535; 0 picks any free port)")
    return number


def workers(raw: object) -> int:
    count = whole(raw)
    if count < 1:
        raise ValueError(f"{count} workers: at least 1 is needed")
    return count


def size(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"{raw!r} is not a size (use e.g. 64MiB, 10GiB)")
    return parse_size(raw)


def block_size(raw: object) -> int:
    # Below 64KiB per-block overhead dominates; above 64MiB one block pins too much RAM per stream.
    length = size(raw)
    if not 64 * KiB <= length <= 64 * MiB:
        raise ValueError(f"{format_size(length)} is outside 64KiB..64MiB")
    return length


def seconds(raw: object) -> float:
    value = math.nan
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{raw!r} is not a positive number of seconds")
    return value


def price(raw: object) -> float:
    """A price in US dollars: a finite number, 0 or more (0 says the item costs nothing)."""
    value = math.nan
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{raw!r} is not a price in USD (a number, 0 or more)")
    return value


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower() if isinstance(raw, str | int) else ""
    if word not in _BOOLEANS:
        raise ValueError(f"{raw!r} is not a boolean (use true/false, yes/no, 1/0)")
    return _BOOLEANS[word]


def auth(raw: object) -> str:
    if not isinstance(raw, str) or raw.strip().lower() not in ("none", "sigv4"):
        raise ValueError(f"{raw!r} is not an auth mode (use none or sigv4)")
    return raw.strip().lower()


def whole_in(low: int, high: int) -> Callable[[object], int]:
    """A parser of whole numbers from low to high."""

    def parse(raw: object) -> int:
        value = whole(raw)
        if not low <= value <= high:
            raise ValueError(f"{raw!r} is outside {low}..{high}")
        return value

    return parse


readahead_blocks = whole_in(1, 1024)
retries = whole_in(0, 10)


def suffixes(raw: object) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    found = tuple(str(item).strip() for item in items if str(item).strip())
    for suffix in found:
        if not suffix.startswith("."):
            raise ValueError(f"{suffix!r} is not a file suffix such as .parquet")
    return found


def log_format(raw: object) -> str:
    if not isinstance(raw, str) or raw.strip().lower() not in ("text", "json"):
        raise ValueError(f"{raw!r} is not a log format (use text or json)")
    return raw.strip().lower()


def optional_path(raw: object) -> str | None:
    return None if raw is None or raw == "" else text(raw)


_LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(raw: object) -> str:
    level = raw.strip().lower() if isinstance(raw, str) else raw
    if level not in _LOG_LEVELS:
        raise ValueError(f"{raw!r} is not a log level (use {', '.join(_LOG_LEVELS)})")
    return str(level)


def upstream(raw: object) -> str | None:
    """``http(s)://host[:port]`` with the trailing slash stripped; empty or null means none."""
    if raw is None or raw == "":
        return None
    given = text(raw)
    url = urlsplit(given)
    try:
        url.port  # noqa: B018 - evaluated for its ValueError on a bad port
    except ValueError:
        raise ValueError(f"{given!r} has a bad port") from None
    if url.scheme.lower() not in ("http", "https") or not url.hostname:
        raise ValueError(f"{given!r} is not an http:// or https:// URL with a host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"{given!r} must have no path, query or fragment (buckets go in requests)")
    if url.username is not None:
        # Credentials in the URL would end up in logs; they will get settings of their own.
        raise ValueError(f"{given!r} must not carry credentials")
    return f"{url.scheme.lower()}://{url.netloc}"


def peers(raw: object) -> str | None:
    """`--peers` as given, once it parses (tiering/members.py); empty or null means none."""
    if raw is None or raw == "":
        return None
    given = text(raw)
    MemberSource.parse(given)
    return given
