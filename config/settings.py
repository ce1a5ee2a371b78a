"""Settings for s3tier: one frozen value, parsed once from flags, environment and a YAML file.

Every setting is declared once, as a row of ``SETTINGS``. Its flag (``--ram-bytes``), environment
variable (``S3TIER_RAM_BYTES``) and YAML key (``ram_bytes``) all derive from the row's name, so
the three cannot drift apart. Sources are layered, highest first::

    flags the user actually passed > S3TIER_* environment > YAML file > dataclass defaults

The YAML path is the ``yaml_path`` argument, else ``S3TIER_CONFIG``. This module reads no
``os.environ`` and no clock; its only I/O is reading that one YAML file.

Errors::

    ValueError
     └── SettingsError   its message starts with the setting's names, e.g.
            "--ram-bytes / S3TIER_RAM_BYTES: '12XB' is not a size (use e.g. 64MiB, 10GiB)"
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from tiering.freshness import DEFAULT_FRESHNESS, Freshness, FreshnessPolicy, FreshnessRule

KiB = 2**10
MiB = 2**20
GiB = 2**30

CONFIG_FLAG = "--config"
CONFIG_ENV_VAR = "S3TIER_CONFIG"
ENV_PREFIX = "S3TIER_"


class SettingsError(ValueError):
    """A setting is invalid; the message names its flag and where the bad value came from."""


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
    entries = _mapping(raw, "freshness", allowed=("default", "rules"))
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
    entries = _mapping(raw, where, allowed=_RULE_KEYS)
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


def _mapping(raw: object, where: str, allowed: tuple[str, ...]) -> dict[str, object]:
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


# --- value parsers: each takes what a flag, env var or YAML gave and returns a typed value ----


def _text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{raw!r} is not a non-empty string")
    return raw.strip()


def _whole(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", raw):
        return int(raw)
    raise ValueError(f"{raw!r} is not a whole number")


def _port(raw: object) -> int:
    port = _whole(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port (0..65535; 0 picks any free port)")
    return port


def _workers(raw: object) -> int:
    workers = _whole(raw)
    if workers < 1:
        raise ValueError(f"{workers} workers: at least 1 is needed")
    return workers


def _size(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"{raw!r} is not a size (use e.g. 64MiB, 10GiB)")
    return parse_size(raw)


def _block_size(raw: object) -> int:
    # Below 64KiB per-block overhead dominates; above 64MiB one block pins too much RAM per stream.
    size = _size(raw)
    if not 64 * KiB <= size <= 64 * MiB:
        raise ValueError(f"{format_size(size)} is outside 64KiB..64MiB")
    return size


def _seconds(raw: object) -> float:
    seconds = math.nan
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            seconds = float(raw)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{raw!r} is not a positive number of seconds")
    return seconds


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower() if isinstance(raw, str | int) else ""
    if word not in _BOOLEANS:
        raise ValueError(f"{raw!r} is not a boolean (use true/false, yes/no, 1/0)")
    return _BOOLEANS[word]


def _auth(raw: object) -> str:
    if not isinstance(raw, str) or raw.strip().lower() not in ("none", "sigv4"):
        raise ValueError(f"{raw!r} is not an auth mode (use none or sigv4)")
    return raw.strip().lower()


def _whole_in(low: int, high: int) -> Callable[[object], int]:
    """A parser of whole numbers from low to high."""

    def parse(raw: object) -> int:
        value = _whole(raw)
        if not low <= value <= high:
            raise ValueError(f"{raw!r} is outside {low}..{high}")
        return value

    return parse


_readahead_blocks = _whole_in(1, 1024)
_retries = _whole_in(0, 10)


def _suffixes(raw: object) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    suffixes = tuple(str(item).strip() for item in items if str(item).strip())
    for suffix in suffixes:
        if not suffix.startswith("."):
            raise ValueError(f"{suffix!r} is not a file suffix such as .parquet")
    return suffixes




def _log_format(raw: object) -> str:
    if not isinstance(raw, str) or raw.strip().lower() not in ("text", "json"):
        raise ValueError(f"{raw!r} is not a log format (use text or json)")
    return raw.strip().lower()


def _optional_path(raw: object) -> str | None:
    return None if raw is None or raw == "" else _text(raw)


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(raw: object) -> str:
    level = raw.strip().lower() if isinstance(raw, str) else raw
    if level not in _LOG_LEVELS:
        raise ValueError(f"{raw!r} is not a log level (use {', '.join(_LOG_LEVELS)})")
    return str(level)


def _upstream(raw: object) -> str | None:
    """``http(s)://host[:port]`` with the trailing slash stripped; empty or null means none."""
    if raw is None or raw == "":
        return None
    text = _text(raw)
    url = urlsplit(text)
    try:
        url.port  # noqa: B018 - evaluated for its ValueError on a bad port
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    if url.scheme.lower() not in ("http", "https") or not url.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL with a host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"{text!r} must have no path, query or fragment (buckets go in requests)")
    if url.username is not None:
        # Credentials in the URL would end up in logs; they will get settings of their own.
        raise ValueError(f"{text!r} must not carry credentials")
    return f"{url.scheme.lower()}://{url.netloc}"


# --- the settings table ------------------------------------------------------------------------


def _show_auth(value: object) -> str:
    return "none on a loopback address, else sigv4"


def _show_token(value: object) -> str:
    return "unset: the admin surface is closed under sigv4"


def _show_credentials(value: object) -> str:
    return "the proxy's own upstream credentials"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an address (names other than localhost: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show_size(value: object) -> str:
    return format_size(value) if isinstance(value, int) else str(value)


def _show_upstream(value: object) -> str:
    return "unset: start the embedded S3 server" if value is None else str(value)


def _show_boolean(value: object) -> str:
    return str(value).lower()


def _show_disk_dir(value: object) -> str:
    return "$XDG_CACHE_HOME/s3tier, else ~/.cache/s3tier"


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table; the flag, env var and YAML key all derive from ``name``."""

    name: str  # the YAML key; also the key of the ``flags`` mapping given to from_sources
    attribute: str  # the Settings field it fills
    parse: Callable[[object], object]  # raises ValueError with a message that omits the name
    metavar: str
    help: str
    show: Callable[[object], str] = str  # renders the default for --help
    boolean: bool = False  # an on/off flag (--x / --no-x) rather than one taking a value

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def yaml_key(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """How an error names this setting when its value came from a flag, env var or default."""
        return f"{self.flag} / {self.env_var}"

    def default_text(self) -> str:
        return self.show(getattr(_DEFAULTS, self.attribute))


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "host", _text, "ADDR", "address to listen on"),
    Setting("port", "port", _port, "PORT", "TCP port to listen on; 0 picks any free port"),
    Setting("upstream", "upstream", _upstream, "URL",
            "S3 endpoint to cache, http(s)://host[:port]", show=_show_upstream),
    Setting("region", "region", _text, "REGION",
            "AWS region of the upstream and the embedded S3 server"),
    Setting("base_domain", "base_domain", _text, "DOMAIN",
            "virtual-hosted addressing: Host <bucket>.<domain>[:port]"),
    Setting("ram_bytes", "ram_bytes", _size, "SIZE",
            "RAM tier capacity, e.g. 512MiB; 0 disables it", show=_show_size),
    Setting("ram_max_object", "ram_max_object_bytes", _size, "SIZE",
            "objects larger than this never live in RAM", show=_show_size),
    Setting("disk_dir", "disk_dir", _text, "PATH", "directory of the disk tier",
            show=_show_disk_dir),
    Setting("disk_bytes", "disk_bytes", _size, "SIZE",
            "disk tier capacity, e.g. 10GiB; 0 disables it", show=_show_size),
    Setting("block_size", "block_size_bytes", _block_size, "SIZE",
            "cache block size, 64KiB..64MiB", show=_show_size),
    Setting("put_cache_max", "put_cache_max_bytes", _size, "SIZE",
            "largest PUT body cached on the way through; 0 caches none", show=_show_size),
    Setting("prefetch_bytes", "prefetch_bytes", _size, "SIZE",
            "bytes prefetch may have in flight; 0 turns read-ahead off", show=_show_size),
    Setting("readahead_max", "readahead_max_blocks", _readahead_blocks, "BLOCKS",
            "largest read-ahead window of a sequential reader, in blocks"),
    Setting("prefetch_footer", "prefetch_footer", _suffixes, "SUFFIXES",
            "comma-separated file suffixes whose last block is fetched on first touch"),
    Setting("freshness", "freshness", freshness_policy, "MODE",
            "strict, immutable or ttl:SECONDS (per-bucket rules: YAML only)"),
    Setting("serve_stale_on_error", "serve_stale_on_error", _boolean, "BOOL",
            "serve an expired cached copy when the upstream fails",
            show=_show_boolean, boolean=True),
    Setting("auth", "auth", _auth, "MODE",
            "client authentication: none, or sigv4 (verify signatures)", show=_show_auth),
    Setting("credentials_file", "credentials_file", _optional_path, "PATH",
            "YAML/JSON list of client keys and grants for sigv4", show=_show_credentials),
    Setting("admin_token", "admin_token", _optional_path, "TOKEN",
            "bearer token for the admin surface under --auth sigv4", show=_show_token),
    Setting("workers", "workers", _workers, "N", "server worker processes"),
    Setting("upstream_connect_timeout", "upstream_connect_timeout_s", _seconds, "SECONDS",
            "timeout for connecting to the upstream"),
    Setting("upstream_read_timeout", "upstream_read_timeout_s", _seconds, "SECONDS",
            "timeout for each read from the upstream"),
    Setting("upstream_retries", "upstream_retries", _retries, "N",
            "retries of an idempotent upstream read that got no answer or a 500/503"),
    Setting("header_timeout", "header_timeout_s", _seconds, "SECONDS",
            "how long a client may take to send its request headers"),
    Setting("log_level", "log_level", _log_level, "LEVEL", "debug, info, warning or error"),
    Setting("log_format", "log_format", _log_format, "FORMAT", "text, or json (one object a line)"),
    Setting("shutdown_grace", "shutdown_grace_s", _seconds, "SECONDS",
            "on SIGTERM, how long in-flight requests may take to finish"),
)  # fmt: skip
SETTINGS_BY_NAME: Mapping[str, Setting] = {row.name: row for row in SETTINGS}


# --- the settings value ------------------------------------------------------------------------

# Fields whose values redacted() masks; none exist until upstream credentials become settings.
_SECRET_FIELDS: frozenset[str] = frozenset({"admin_token"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything s3tier is configured with. Build it with ``from_sources``.

    Constructing it directly (as tests may) skips validation and leaves ``disk_dir`` empty.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    upstream: str | None = None  # None: start the embedded S3 server
    region: str = "us-east-1"
    base_domain: str = "localhost"
    ram_bytes: int = 256 * MiB
    ram_max_object_bytes: int = 16 * MiB
    disk_dir: str = ""  # from_sources resolves the XDG default from the environ it is given
    disk_bytes: int = 10 * GiB  # 0 disables the disk tier
    block_size_bytes: int = 1 * MiB
    put_cache_max_bytes: int = 64 * MiB
    prefetch_bytes: int = 64 * MiB
    readahead_max_blocks: int = 16
    prefetch_footer: tuple[str, ...] = (".parquet",)
    freshness: FreshnessPolicy = FreshnessPolicy(DEFAULT_FRESHNESS)  # noqa: RUF009 - frozen
    serve_stale_on_error: bool = False
    auth: Literal["none", "sigv4"] = "none"  # from_sources: sigv4 unless host is loopback
    credentials_file: str | None = None  # None: the proxy's own upstream credentials
    admin_token: str | None = None
    workers: int = 1
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 30.0
    upstream_retries: int = 2
    header_timeout_s: float = 10.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = 30.0

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, object], environ: Mapping[str, str], yaml_path: str | None = None
    ) -> Settings:
        """Layer flags over ``S3TIER_*`` over YAML over defaults, then validate the result.

        ``flags`` holds only the flags the user passed, keyed by setting name (``ram_max_object``).
        """
        path = yaml_path or environ.get(CONFIG_ENV_VAR) or None
        given = {**_from_yaml(path), **_from_environ(environ), **_from_flags(flags)}
        values: dict[str, Any] = {
            row.attribute: _parse(row, given[row.name]) for row in SETTINGS if row.name in given
        }
        values["disk_dir"] = _resolve_disk_dir(values.get("disk_dir"), environ)
        # Safe by default: anything reachable beyond this machine checks signatures.
        host = values.get("host", cls.__dataclass_fields__["host"].default)
        values.setdefault("auth", "none" if is_loopback(host) else "sigv4")
        settings = cls(**values)
        _check_ram_limits(settings, given)
        return settings

    def redacted(self) -> dict[str, object]:
        """A JSON-able view for the start-up log line, with any secret fields masked."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        view["freshness"] = self.freshness.to_json()
        return {
            name: "***" if name in _SECRET_FIELDS and value else value
            for name, value in view.items()
        }


_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class _Given:
    """A raw value and how an error should name where it came from."""

    value: object
    source: str


def _parse(row: Setting, given: _Given) -> object:
    try:
        return row.parse(given.value)
    except ValueError as exc:
        raise SettingsError(f"{given.source}: {exc}") from exc


def _from_flags(flags: Mapping[str, object]) -> dict[str, _Given]:
    unknown = sorted(set(flags) - set(SETTINGS_BY_NAME))
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r} in flags")
    return {name: _Given(value, SETTINGS_BY_NAME[name].label) for name, value in flags.items()}


def _from_environ(environ: Mapping[str, str]) -> dict[str, _Given]:
    return {row.name: _Given(environ[row.env_var], row.label) for row in SETTINGS
            if row.env_var in environ}  # fmt: skip


def _from_yaml(path: str | None) -> dict[str, _Given]:
    if path is None:
        return {}
    try:
        entries = _mapping(_load_yaml(path), path, allowed=tuple(SETTINGS_BY_NAME))
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    return {key: _Given(value, f"{SETTINGS_BY_NAME[key].flag} / {key} in {path}")
            for key, value in entries.items()}  # fmt: skip


def _load_yaml(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except OSError as exc:
        raise SettingsError(f"{CONFIG_FLAG} / {CONFIG_ENV_VAR}: cannot read {path!r}: "
                            f"{exc.strerror}") from exc  # fmt: skip
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    return {} if document is None else document  # an empty file configures nothing


def _resolve_disk_dir(configured: str | None, environ: Mapping[str, str]) -> str:
    home = environ.get("HOME", "")
    if configured is not None:
        # Flags get "~" expanded by the shell; env vars and YAML do not, so expand it here.
        is_home_relative = configured == "~" or configured.startswith("~/")
        return home + configured[1:] if is_home_relative and home else configured
    # XDG Base Directory spec: a relative $XDG_CACHE_HOME is invalid and must be ignored.
    xdg_cache = environ.get("XDG_CACHE_HOME", "")
    if xdg_cache.startswith("/"):
        return xdg_cache.rstrip("/") + "/s3tier"
    if home:
        return home.rstrip("/") + "/.cache/s3tier"
    raise SettingsError(f"{SETTINGS_BY_NAME['disk_dir'].label}: no default, since neither "
                        "XDG_CACHE_HOME nor HOME is set; set it explicitly")  # fmt: skip


def _source(given: Mapping[str, _Given], name: str) -> str:
    return given[name].source if name in given else f"{SETTINGS_BY_NAME[name].label} (default)"


def _check_ram_limits(settings: Settings, given: Mapping[str, _Given]) -> None:
    # An object bigger than the whole RAM tier could never be admitted; ram_bytes 0 disables RAM.
    if settings.ram_bytes and settings.ram_max_object_bytes > settings.ram_bytes:
        raise SettingsError(
            f"{_source(given, 'ram_max_object')}: {format_size(settings.ram_max_object_bytes)} "
            f"exceeds {_source(given, 'ram_bytes')} ({format_size(settings.ram_bytes)})"
        )
