"""Settings for s3tier: one frozen value, parsed once from flags, environment and a YAML file.

Every setting is declared once, as a row of ``SETTINGS``. Its flag (``--ram-bytes``), environment
variable (``S3TIER_RAM_BYTES``) and YAML key (``ram_bytes``) all derive from the row's name, so
the three cannot drift apart. Sources are layered, highest first::

    flags the user actually passed > S3TIER_* environment > YAML file > defaults

Some size defaults follow other sizes (``config/derived.py``): an unset ``--ram-max-object`` is
a quarter of ``--ram-bytes``, for instance. Left empty (``""`` or YAML ``null``), such a setting
counts as unset. The value parsers live in ``config/parsers.py``.

The YAML path is the ``yaml_path`` argument, else ``S3TIER_CONFIG``. This module reads no
``os.environ`` and no clock; its only I/O is reading that one YAML file.

Errors::

    ValueError
     └── SettingsError   its message starts with the setting's names, e.g.
            "--ram-bytes / S3TIER_RAM_BYTES: '12XB' is not a size (use e.g. 64MiB, 10GiB)"
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from config import derived, parsers
from config.parsers import GiB, MiB, format_size, freshness_policy, parse_size
from tiering.freshness import DEFAULT_FRESHNESS, Freshness, FreshnessPolicy, FreshnessRule

__all__ = [
    "CONFIG_ENV_VAR", "CONFIG_FLAG", "ENV_PREFIX", "SETTINGS", "SETTINGS_BY_NAME", "Freshness",
    "FreshnessPolicy", "FreshnessRule", "GiB", "MiB", "Setting", "Settings", "SettingsError",
    "format_size", "freshness_policy", "is_loopback", "parse_size",
]  # fmt: skip

CONFIG_FLAG = "--config"
CONFIG_ENV_VAR = "S3TIER_CONFIG"
ENV_PREFIX = "S3TIER_"


class SettingsError(ValueError):
    """A setting is invalid; the message names its flag and where the bad value came from."""


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


def _show_peers(value: object) -> str:
    return "unset: this node caches alone"


def _show_advertise(value: object) -> str:
    return "http(s)://HOST:PORT from --host, --port and --tls-cert"


def _show_secret(value: object) -> str:
    return "unset"


def _show_unset(value: object) -> str:
    return "unset" if value is None else str(value)


def _show_size(value: object) -> str:
    return format_size(value) if isinstance(value, int) else str(value)


def _show_upstream(value: object) -> str:
    return "unset: start the embedded S3 server" if value is None else str(value)


def _show_boolean(value: object) -> str:
    return str(value).lower()


def _show_disk_dir(value: object) -> str:
    return "$XDG_CACHE_HOME/s3tier, else ~/.cache/s3tier"


def _show_rule(name: str) -> Callable[[object], str]:
    rule = derived.DERIVED[name].rule
    return lambda value: rule


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
    Setting("host", "host", parsers.text, "ADDR", "address to listen on"),
    Setting("port", "port", parsers.port, "PORT", "TCP port to listen on; 0 picks any free port"),
    Setting("upstream", "upstream", parsers.upstream, "URL",
            "S3 endpoint to cache, http(s)://host[:port]", show=_show_upstream),
    Setting("region", "region", parsers.text, "REGION",
            "AWS region of the upstream and the embedded S3 server"),
    Setting("base_domain", "base_domain", parsers.text, "DOMAIN",
            "virtual-hosted addressing: Host <bucket>.<domain>[:port]"),
    Setting("ram_bytes", "ram_bytes", parsers.size, "SIZE",
            "RAM tier capacity per worker, e.g. 512MiB; 0 disables it", show=_show_size),
    Setting("ram_max_object", "ram_max_object_bytes", parsers.size, "SIZE",
            "objects larger than this never live in RAM", show=_show_rule("ram_max_object")),
    Setting("disk_dir", "disk_dir", parsers.text, "PATH", "directory of the disk tier",
            show=_show_disk_dir),
    Setting("disk_bytes", "disk_bytes", parsers.size, "SIZE",
            "disk tier capacity, shared by the workers, e.g. 10GiB; 0 disables it",
            show=_show_size),
    Setting("block_size", "block_size_bytes", parsers.block_size, "SIZE",
            "cache block size, 64KiB..64MiB", show=_show_size),
    Setting("put_cache_max", "put_cache_max_bytes", parsers.size, "SIZE",
            "largest PUT body cached on the way through; 0 caches none",
            show=_show_rule("put_cache_max")),
    Setting("prefetch_bytes", "prefetch_bytes", parsers.size, "SIZE",
            "bytes prefetch may have in flight, per worker; 0 turns read-ahead off",
            show=_show_rule("prefetch_bytes")),
    Setting("readahead_max", "readahead_max_blocks", parsers.readahead_blocks, "BLOCKS",
            "largest read-ahead window of a sequential reader, in blocks"),
    Setting("prefetch_footer", "prefetch_footer", parsers.suffixes, "SUFFIXES",
            "comma-separated file suffixes whose last block is fetched on first touch"),
    Setting("freshness", "freshness", freshness_policy, "MODE",
            "strict, immutable or ttl:SECONDS (per-bucket rules: YAML only)"),
    Setting("serve_stale_on_error", "serve_stale_on_error", parsers.boolean, "BOOL",
            "serve an expired cached copy when the upstream fails",
            show=_show_boolean, boolean=True),
    Setting("auth", "auth", parsers.auth, "MODE",
            "client authentication: none, or sigv4 (verify signatures)", show=_show_auth),
    Setting("credentials_file", "credentials_file", parsers.optional_path, "PATH",
            "YAML/JSON list of client keys and grants for sigv4", show=_show_credentials),
    Setting("admin_token", "admin_token", parsers.optional_path, "TOKEN",
            "bearer token for the admin surface under --auth sigv4", show=_show_token),
    Setting("workers", "workers", parsers.workers, "N", "server worker processes"),
    Setting("upstream_connect_timeout", "upstream_connect_timeout_s", parsers.seconds,
            "SECONDS", "timeout for connecting to the upstream"),
    Setting("upstream_read_timeout", "upstream_read_timeout_s", parsers.seconds, "SECONDS",
            "timeout for each read from the upstream"),
    Setting("upstream_retries", "upstream_retries", parsers.retries, "N",
            "retries of an idempotent upstream read that got no answer or a 500/503"),
    Setting("header_timeout", "header_timeout_s", parsers.seconds, "SECONDS",
            "how long a client may take to send its request headers"),
    Setting("log_level", "log_level", parsers.log_level, "LEVEL",
            "debug, info, warning or error"),
    Setting("log_format", "log_format", parsers.log_format, "FORMAT",
            "text, or json (one object a line)"),
    Setting("shutdown_grace", "shutdown_grace_s", parsers.seconds, "SECONDS",
            "on SIGTERM, how long in-flight requests may take to finish"),
    Setting("peers", "peers", parsers.peers, "MEMBERS",
            "the fleet this node caches with: URL,URL,... (this node included), "
            "dns:NAME:PORT or file:PATH (docs/fleet.md)", show=_show_peers),
    Setting("advertise", "advertise", parsers.upstream, "URL",
            "how the other members reach this node", show=_show_advertise),
    Setting("peer_secret", "peer_secret", parsers.optional_path, "SECRET",
            "shared by every member, signs their requests to each other", show=_show_secret),
    Setting("tls_cert", "tls_cert", parsers.optional_path, "PATH",
            "PEM certificate (chain) to serve HTTPS with; reloaded when it changes and on SIGHUP",
            show=_show_unset),
    Setting("tls_key", "tls_key", parsers.optional_path, "PATH",
            "PEM private key of --tls-cert", show=_show_unset),
    Setting("tls_ca", "tls_ca", parsers.optional_path, "PATH",
            "PEM CA bundle that https:// members are verified against (default: the system's)",
            show=_show_unset),
    Setting("price_get_per_1000", "price_get_per_1000", parsers.price, "USD",
            "what the upstream charges per 1,000 GET requests, for the savings figures "
            "(default: AWS S3 Standard, us-east-1)"),
    Setting("price_egress_per_gib", "price_egress_per_gib", parsers.price, "USD",
            "what a GiB fetched from the upstream costs, for the savings figures (default: "
            "AWS data transfer out to the internet, first 10 TB a month; 0 in-region)"),
)  # fmt: skip
SETTINGS_BY_NAME: Mapping[str, Setting] = {row.name: row for row in SETTINGS}


# --- the settings value ------------------------------------------------------------------------

# Fields whose values redacted() masks; none exist until upstream credentials become settings.
_SECRET_FIELDS: frozenset[str] = frozenset({"admin_token", "peer_secret"})


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
    peers: str | None = None  # None: no fleet
    advertise: str | None = None  # None: http(s)://host:port
    peer_secret: str | None = None
    tls_cert: str | None = None  # None: plain HTTP
    tls_key: str | None = None
    tls_ca: str | None = None
    # AWS's public S3 price list (aws.amazon.com/s3/pricing), us-east-1, S3 Standard: GET
    # $0.0004 per 1,000 requests; data transfer out to the internet $0.09 per GB, first 10 TB.
    price_get_per_1000: float = 0.0004
    price_egress_per_gib: float = 0.09

    @property
    def member_id(self) -> str:
        """This node's URL as the other members know it (its id for block ownership)."""
        scheme = "https" if self.tls_cert else "http"
        return self.advertise or f"{scheme}://{self.host}:{self.port}"

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, object], environ: Mapping[str, str], yaml_path: str | None = None
    ) -> Settings:
        """Layer flags over ``S3TIER_*`` over YAML over defaults, then validate the result.

        ``flags`` holds only the flags the user passed, keyed by setting name (``ram_max_object``).
        """
        path = yaml_path or environ.get(CONFIG_ENV_VAR) or None
        layered = {**_from_yaml(path), **_from_environ(environ), **_from_flags(flags)}
        given = {name: g for name, g in layered.items() if not _left_to_derive(name, g)}
        values: dict[str, Any] = {
            row.attribute: _parse(row, given[row.name]) for row in SETTINGS if row.name in given
        }
        values["disk_dir"] = _resolve_disk_dir(values.get("disk_dir"), environ)
        # Safe by default: anything reachable beyond this machine checks signatures.
        host = values.get("host", cls.__dataclass_fields__["host"].default)
        values.setdefault("auth", "none" if is_loopback(host) else "sigv4")
        if values.get("peers") and not values.get("peer_secret"):
            row = SETTINGS_BY_NAME["peer_secret"]
            raise SettingsError(f"{row.label}: required with --peers (members sign requests)")
        if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
            row = SETTINGS_BY_NAME["tls_key" if values.get("tls_cert") else "tls_cert"]
            raise SettingsError(f"{row.label}: --tls-cert and --tls-key go together")
        return _with_derived_sizes(cls(**values), given)

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
        entries = parsers.mapping(_load_yaml(path), path, allowed=tuple(SETTINGS_BY_NAME))
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


def _left_to_derive(name: str, given: _Given) -> bool:
    """An empty value of a derived setting means "derive it", so that a YAML file or a Helm
    chart can list the key without pinning it."""
    blank = given.value is None or (isinstance(given.value, str) and not given.value.strip())
    return blank and name in derived.DERIVED


def _with_derived_sizes(settings: Settings, given: Mapping[str, _Given]) -> Settings:
    """Derived sizes filled in from the sizes in force; a conflict between given ones raised."""
    attribute = {name: SETTINGS_BY_NAME[name].attribute for name in derived.INPUTS}
    in_force = {name: getattr(settings, attribute[name]) for name in derived.INPUTS}
    sizes = derived.derive(in_force, given.keys())
    for conflict in derived.conflicts(sizes, given.keys()):
        raise SettingsError(_conflict_message(conflict, sizes, given))
    filled: dict[str, Any] = {attribute[name]: sizes[name] for name in derived.DERIVED}
    return dataclasses.replace(settings, **filled)


def _conflict_message(
    conflict: derived.Conflict, sizes: Mapping[str, int], given: Mapping[str, _Given]
) -> str:
    bound = " + ".join(f"{given[other].source} ({format_size(sizes[other])})"
                       for other in conflict.others)  # fmt: skip
    return (f"{given[conflict.name].source}: {format_size(sizes[conflict.name])} "
            f"{conflict.relation} {bound}: {conflict.why}")  # fmt: skip
