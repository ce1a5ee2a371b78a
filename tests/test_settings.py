"""Specification of config.settings: sizes, freshness, precedence of sources and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from config.settings import (
    SETTINGS,
    SETTINGS_BY_NAME,
    Freshness,
    FreshnessPolicy,
    FreshnessRule,
    Settings,
    SettingsError,
    format_size,
    parse_size,
)

KiB, MiB, GiB = 2**10, 2**20, 2**30
HOME = "/home/tester"
BASE_ENV = {"HOME": HOME}  # disk_dir's default needs a home; nothing else is read from it
EXAMPLE_YAML = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


def write_yaml(tmp_path: Path, document: object) -> str:
    path = tmp_path / "s3tier.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def from_env(**env: str) -> Settings:
    return Settings.from_sources({}, {**BASE_ENV, **env}, None)


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        pytest.param("4096", 4096, id="a plain number is bytes"),
        pytest.param("0", 0, id="zero is a size"),
        pytest.param(4096, 4096, id="an int is bytes"),
        pytest.param("64MiB", 64 * MiB, id="MiB is binary"),
        pytest.param("10GiB", 10 * GiB, id="GiB is binary"),
        pytest.param("512KiB", 512 * KiB, id="KiB is binary"),
        pytest.param("2TiB", 2 * 2**40, id="TiB is binary"),
        pytest.param("1.5GiB", 3 * GiB // 2, id="a fraction of a unit is exact"),
        pytest.param("10GB", 10 * 10**9, id="GB is decimal"),
        pytest.param("1KB", 1000, id="KB is decimal"),
        pytest.param("3MB", 3 * 10**6, id="MB is decimal"),
        pytest.param("1TB", 10**12, id="TB is decimal"),
        pytest.param("12B", 12, id="B is bytes"),
        pytest.param("64mib", 64 * MiB, id="units are case insensitive"),
        pytest.param("64 MiB", 64 * MiB, id="a space before the unit is allowed"),
        pytest.param(" 1GiB ", GiB, id="surrounding whitespace is ignored"),
        pytest.param(".5KiB", 512, id="a leading decimal point is allowed"),
    ],
)
def test_parse_size_accepts(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("12XB", id="an unknown unit"),
        pytest.param("-1", id="a negative number"),
        pytest.param(-1, id="a negative int"),
        pytest.param("", id="nothing"),
        pytest.param("MiB", id="a unit without a number"),
        pytest.param("1.5B", id="a fraction of a byte"),
        pytest.param("1,024", id="a thousands separator"),
        pytest.param("1e6", id="an exponent"),
        pytest.param("1 2MiB", id="two numbers"),
        pytest.param("9" * 5000, id="absurdly many digits"),
    ],
)
def test_parse_size_rejects(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (256 * MiB, "256MiB"),
        (10 * GiB, "10GiB"),
        (1536 * KiB, "1536KiB"),
        (1000, "1000B"),
        (0, "0B"),
    ],
)
def test_format_size_uses_the_largest_exact_binary_unit(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


# --- freshness -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "freshness"),
    [
        pytest.param("strict", Freshness("strict"), id="strict"),
        pytest.param("immutable", Freshness("immutable"), id="immutable"),
        pytest.param("ttl:5", Freshness("ttl", 5.0), id="a whole ttl"),
        pytest.param("ttl:0.5", Freshness("ttl", 0.5), id="a fractional ttl"),
        pytest.param("ttl:0", Freshness("ttl", 0.0), id="a zero ttl"),
        pytest.param(" TTL:30 ", Freshness("ttl", 30.0), id="case and whitespace are ignored"),
        pytest.param("Strict", Freshness("strict"), id="modes are case insensitive"),
    ],
)
def test_freshness_parse_accepts(text: str, freshness: Freshness) -> None:
    assert Freshness.parse(text) == freshness


@pytest.mark.parametrize(
    "text",
    ["ttl", "ttl:", "ttl:-1", "ttl:abc", "ttl:nan", "ttl:inf", "forever", "strict:5", "", "ttl5"],
)
def test_freshness_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Freshness.parse(text)


@pytest.mark.parametrize("text", ["strict", "immutable", "ttl:5", "ttl:0.5", "ttl:0"])
def test_freshness_prints_as_it_parses(text: str) -> None:
    assert str(Freshness.parse(text)) == text


def test_freshness_refuses_a_negative_ttl_even_when_built_directly() -> None:
    with pytest.raises(ValueError):
        Freshness("ttl", -1.0)


STRICT, IMMUTABLE, DEFAULT = Freshness("strict"), Freshness("immutable"), Freshness("ttl", 5.0)
POLICY = FreshnessPolicy(
    DEFAULT,
    (
        FreshnessRule("assets", "", STRICT),
        FreshnessRule("assets", "blobs/", IMMUTABLE),
        FreshnessRule("assets", "blobs/tmp/", Freshness("ttl", 1.0)),
        FreshnessRule("logs", "2024/", IMMUTABLE),
    ),
)


@pytest.mark.parametrize(
    ("bucket", "key", "freshness"),
    [
        pytest.param("assets", "index.html", STRICT, id="a whole-bucket rule covers every key"),
        pytest.param("assets", "blobs/a", IMMUTABLE, id="a longer prefix beats the bucket rule"),
        pytest.param("assets", "blobs/tmp/x", Freshness("ttl", 1.0), id="the longest prefix wins"),
        pytest.param("assets", "blobs", STRICT, id="a key shorter than a prefix does not match"),
        pytest.param("logs", "2024/01", IMMUTABLE, id="a prefix rule in another bucket"),
        pytest.param("logs", "2023/01", DEFAULT, id="no matching prefix falls to the default"),
        pytest.param("other", "blobs/a", DEFAULT, id="rules of other buckets never apply"),
        pytest.param("Assets", "x", DEFAULT, id="bucket names match exactly"),
    ],
)
def test_for_key_picks_the_longest_prefix_in_the_bucket(
    bucket: str, key: str, freshness: Freshness
) -> None:
    assert POLICY.for_key(bucket, key) == freshness


def test_rule_order_does_not_change_the_winner() -> None:
    reversed_policy = FreshnessPolicy(DEFAULT, tuple(reversed(POLICY.rules)))
    assert reversed_policy.for_key("assets", "blobs/tmp/x") == Freshness("ttl", 1.0)


def test_yaml_freshness_mapping_builds_a_policy(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        {
            "freshness": {
                "default": "ttl:30",
                "rules": [
                    {"bucket": "assets", "prefix": "blobs/", "mode": "immutable"},
                    {"bucket": "logs", "mode": "strict"},
                ],
            }
        },
    )
    policy = Settings.from_sources({}, BASE_ENV, path).freshness
    assert policy == FreshnessPolicy(
        Freshness("ttl", 30.0),
        (FreshnessRule("assets", "blobs/", IMMUTABLE), FreshnessRule("logs", "", STRICT)),
    )


def test_yaml_freshness_mapping_without_default_keeps_the_default(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"freshness": {"rules": [{"bucket": "b", "mode": "strict"}]}})
    assert Settings.from_sources({}, BASE_ENV, path).freshness.default == DEFAULT


def test_yaml_freshness_string_is_the_default_with_no_rules(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"freshness": "immutable"})
    assert Settings.from_sources({}, BASE_ENV, path).freshness == FreshnessPolicy(IMMUTABLE)


@pytest.mark.parametrize(
    ("freshness", "fragment"),
    [
        pytest.param({"defualt": "strict"}, "did you mean 'default'", id="a typo in a key"),
        pytest.param({"rules": [{"bucket": "b", "mode": "strict", "prefx": "a/"}]},
                     "did you mean 'prefix'", id="a typo in a rule key"),
        pytest.param({"rules": [{"mode": "strict"}]}, "rules[0].bucket",
                     id="a rule without bucket"),
        pytest.param({"rules": [{"bucket": "", "mode": "strict"}]}, "rules[0].bucket",
                     id="a rule with an empty bucket"),
        pytest.param({"rules": [{"bucket": "b"}]}, "rules[0].mode", id="a rule without mode"),
        pytest.param({"rules": [{"bucket": "b", "mode": "soon"}]}, "'soon' is not a freshness",
                     id="a rule with a bad mode"),
        pytest.param({"rules": {"bucket": "b"}}, "'rules' must be a list", id="rules not a list"),
        pytest.param({"rules": ["strict"]}, "rules[0] must be a mapping", id="a rule not a map"),
        pytest.param({"rules": [{"bucket": "b", "mode": "strict"},
                                {"bucket": "b", "mode": "ttl:1"}]},
                     "two rules for bucket 'b'", id="two rules for one bucket and prefix"),
        pytest.param({"default": 5}, "default must be a string", id="a default that is a number"),
        pytest.param(5, "freshness must be a mapping", id="neither a string nor a mapping"),
    ],
)  # fmt: skip
def test_bad_yaml_freshness_is_an_error_naming_the_part(
    tmp_path: Path, freshness: object, fragment: str
) -> None:
    path = write_yaml(tmp_path, {"freshness": freshness})
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, path)
    assert f"--freshness / freshness in {path}" in str(error.value)
    assert fragment in str(error.value)


# --- the table -------------------------------------------------------------------------------

EXPECTED_ENV_VARS = [
    "S3TIER_HOST", "S3TIER_PORT", "S3TIER_UPSTREAM", "S3TIER_REGION", "S3TIER_BASE_DOMAIN",
    "S3TIER_RAM_BYTES", "S3TIER_RAM_MAX_OBJECT", "S3TIER_DISK_DIR", "S3TIER_DISK_BYTES",
    "S3TIER_BLOCK_SIZE", "S3TIER_PUT_CACHE_MAX", "S3TIER_PREFETCH_BYTES", "S3TIER_READAHEAD_MAX",
    "S3TIER_PREFETCH_FOOTER", "S3TIER_FRESHNESS",
    "S3TIER_SERVE_STALE_ON_ERROR", "S3TIER_AUTH", "S3TIER_CREDENTIALS_FILE", "S3TIER_ADMIN_TOKEN",
    "S3TIER_WORKERS", "S3TIER_UPSTREAM_CONNECT_TIMEOUT", "S3TIER_UPSTREAM_READ_TIMEOUT",
    "S3TIER_UPSTREAM_RETRIES", "S3TIER_HEADER_TIMEOUT", "S3TIER_LOG_LEVEL", "S3TIER_LOG_FORMAT",
    "S3TIER_SHUTDOWN_GRACE", "S3TIER_PEERS", "S3TIER_ADVERTISE", "S3TIER_PEER_SECRET",
    "S3TIER_TLS_CERT", "S3TIER_TLS_KEY", "S3TIER_TLS_CA",
    "S3TIER_PRICE_GET_PER_1000", "S3TIER_PRICE_EGRESS_PER_GIB",
]  # fmt: skip


def test_every_documented_env_var_has_a_row() -> None:
    assert [row.env_var for row in SETTINGS] == EXPECTED_ENV_VARS


def test_flag_env_var_and_yaml_key_derive_from_one_name() -> None:
    row = SETTINGS_BY_NAME["ram_max_object"]
    assert (row.flag, row.env_var, row.yaml_key) == (
        "--ram-max-object",
        "S3TIER_RAM_MAX_OBJECT",
        "ram_max_object",
    )


def test_every_settings_field_is_filled_by_exactly_one_row() -> None:
    assert sorted(row.attribute for row in SETTINGS) == sorted(Settings.__dataclass_fields__)


# --- precedence ------------------------------------------------------------------------------

# name, then (raw, parsed) for each of YAML, environment and flag; each layer differs.
PRECEDENCE = [
    ("host", ("0.0.0.0", "0.0.0.0"), ("::1", "::1"), ("10.0.0.1", "10.0.0.1")),
    ("port", (9000, 9000), ("9001", 9001), ("0", 0)),
    ("upstream", ("http://a:9000/", "http://a:9000"), ("https://b", "https://b"),
     ("http://c:1", "http://c:1")),
    ("region", ("eu-west-1", "eu-west-1"), ("us-west-2", "us-west-2"),
     ("ap-south-1", "ap-south-1")),
    ("base_domain", ("s3.test", "s3.test"), ("cache.test", "cache.test"), ("x.test", "x.test")),
    ("ram_bytes", ("512MiB", 512 * MiB), ("1GiB", GiB), ("2GiB", 2 * GiB)),
    ("ram_max_object", ("1MiB", MiB), ("2MiB", 2 * MiB), ("4MiB", 4 * MiB)),
    ("disk_dir", ("/yaml", "/yaml"), ("/env", "/env"), ("/flag", "/flag")),
    ("disk_bytes", ("1GiB", GiB), ("0", 0), ("100GB", 100 * 10**9)),
    ("block_size", ("64KiB", 64 * KiB), ("4MiB", 4 * MiB), ("64MiB", 64 * MiB)),
    ("put_cache_max", ("1GiB", GiB), ("0", 0), ("8MiB", 8 * MiB)),
    ("prefetch_bytes", ("1GiB", GiB), ("0", 0), ("8MiB", 8 * MiB)),
    ("readahead_max", (4, 4), ("8", 8), ("32", 32)),
    ("prefetch_footer", ([".orc"], (".orc",)), (".parquet,.orc", (".parquet", ".orc")),
     ("", ())),
    ("freshness", ({"default": "ttl:9", "rules": [{"bucket": "b", "mode": "strict"}]},
                   FreshnessPolicy(Freshness("ttl", 9.0), (FreshnessRule("b", "", STRICT),))),
     ("strict", FreshnessPolicy(STRICT)), ("ttl:0.5", FreshnessPolicy(Freshness("ttl", 0.5)))),
    ("serve_stale_on_error", (True, True), ("no", False), (True, True)),
    ("auth", ("none", "none"), ("SigV4", "sigv4"), ("NONE", "none")),
    ("credentials_file", ("/a.yaml", "/a.yaml"), ("/b.json", "/b.json"), ("/c", "/c")),
    ("admin_token", ("t1", "t1"), ("t2", "t2"), ("t3", "t3")),
    ("workers", (2, 2), ("3", 3), ("4", 4)),
    ("upstream_connect_timeout", (1, 1.0), ("2.5", 2.5), ("0.1", 0.1)),
    ("upstream_read_timeout", (10, 10.0), ("20", 20.0), ("60", 60.0)),
    ("upstream_retries", (0, 0), ("3", 3), ("1", 1)),
    ("header_timeout", (5, 5.0), ("2.5", 2.5), ("60", 60.0)),
    ("log_level", ("debug", "debug"), ("WARNING", "warning"), ("error", "error")),
    ("log_format", ("json", "json"), ("TEXT", "text"), ("json", "json")),
    ("shutdown_grace", (5, 5.0), ("10", 10.0), ("0.5", 0.5)),
    ("peers", ("http://a:1,http://b:1", "http://a:1,http://b:1"),
     ("dns:peers:8080", "dns:peers:8080"), ("file:/etc/peers", "file:/etc/peers")),
    ("advertise", ("http://a:1", "http://a:1"), ("https://b", "https://b"),
     ("http://c:2", "http://c:2")),
    ("peer_secret", ("s1", "s1"), ("s2", "s2"), ("s3", "s3")),
    ("tls_cert", ("a.crt", "a.crt"), ("b.crt", "b.crt"), ("c.crt", "c.crt")),
    ("tls_key", ("a.key", "a.key"), ("b.key", "b.key"), ("c.key", "c.key")),
    ("tls_ca", ("a.pem", "a.pem"), ("b.pem", "b.pem"), ("c.pem", "c.pem")),
    ("price_get_per_1000", (0.001, 0.001), ("0.002", 0.002), ("0", 0.0)),
    ("price_egress_per_gib", (0.05, 0.05), ("0.02", 0.02), ("0.0", 0.0)),
]  # fmt: skip
PRECEDENCE_IDS = [case[0] for case in PRECEDENCE]


def test_precedence_table_covers_every_setting() -> None:
    assert [row.name for row in SETTINGS] == PRECEDENCE_IDS


def _layers(
    tmp_path: Path, name: str, case: tuple[tuple[object, object], ...], depth: int
) -> Settings:
    """Settings with the first ``depth`` layers of YAML, environment, flag set for ``name``."""
    (yaml_raw, _), (env_raw, _), (flag_raw, _) = case
    row = SETTINGS_BY_NAME[name]
    path = write_yaml(tmp_path, {name: yaml_raw}) if depth >= 1 else None
    env = {**BASE_ENV, row.env_var: str(env_raw)} if depth >= 2 else BASE_ENV
    flags = {name: flag_raw} if depth >= 3 else {}
    if name == "peers":  # a fleet cannot be configured without its secret
        env = {**env, "S3TIER_PEER_SECRET": "s"}
    partner = {"tls_cert": "S3TIER_TLS_KEY", "tls_key": "S3TIER_TLS_CERT"}.get(name)
    if partner is not None and depth >= 1:  # a certificate goes with its key
        env = {**env, partner: "x"}
    return Settings.from_sources(flags, env, path)


@pytest.mark.parametrize(
    ("name", "yaml_case", "env_case", "flag_case"), PRECEDENCE, ids=PRECEDENCE_IDS
)
@pytest.mark.parametrize("depth", [0, 1, 2, 3], ids=["default", "yaml", "env>yaml", "flag>env"])
def test_flag_beats_env_beats_yaml_beats_default(
    tmp_path: Path,
    name: str,
    yaml_case: tuple[object, object],
    env_case: tuple[object, object],
    flag_case: tuple[object, object],
    depth: int,
) -> None:
    attribute = SETTINGS_BY_NAME[name].attribute
    expected_by_depth = [
        getattr(Settings(disk_dir=f"{HOME}/.cache/s3tier"), attribute),
        yaml_case[1],
        env_case[1],
        flag_case[1],
    ]
    settings = _layers(tmp_path, name, (yaml_case, env_case, flag_case), depth)
    assert getattr(settings, attribute) == expected_by_depth[depth]


def test_yaml_path_comes_from_s3tier_config_when_not_given(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"port": 7000})
    assert Settings.from_sources({}, {**BASE_ENV, "S3TIER_CONFIG": path}, None).port == 7000


def test_an_explicit_yaml_path_beats_s3tier_config(tmp_path: Path) -> None:
    chosen = write_yaml(tmp_path, {"port": 7000})
    other = tmp_path / "other.yaml"
    other.write_text("port: 7001\n", encoding="utf-8")
    env = {**BASE_ENV, "S3TIER_CONFIG": str(other)}
    assert Settings.from_sources({}, env, chosen).port == 7000


def test_an_empty_yaml_file_configures_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert Settings.from_sources({}, BASE_ENV, str(path)) == from_env()


# --- values that parse -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), (" yes ", True), ("1", True),
     ("false", False), ("No", False), ("0", False)],
)  # fmt: skip
def test_booleans_accept_true_false_yes_no_1_0(raw: str, expected: bool) -> None:
    assert from_env(S3TIER_SERVE_STALE_ON_ERROR=raw).serve_stale_on_error is expected


@pytest.mark.parametrize(
    ("raw", "upstream"),
    [
        pytest.param("http://localhost:9000/", "http://localhost:9000", id="trailing slash"),
        pytest.param("https://s3.example.com", "https://s3.example.com", id="https"),
        pytest.param("HTTP://minio:9000", "http://minio:9000", id="scheme case"),
        pytest.param("http://[::1]:9000", "http://[::1]:9000", id="an IPv6 host"),
        pytest.param("", None, id="empty means the embedded server"),
    ],
)
def test_upstream_is_normalised(raw: str, upstream: str | None) -> None:
    assert from_env(S3TIER_UPSTREAM=raw).upstream == upstream


@pytest.mark.parametrize(
    ("document", "attribute", "value"),
    [
        pytest.param({"port": 9000}, "port", 9000, id="a YAML int port"),
        pytest.param({"disk_bytes": 1048576}, "disk_bytes", MiB, id="a YAML int size"),
        pytest.param({"serve_stale_on_error": "yes"}, "serve_stale_on_error", True,
                     id="a YAML yes is true"),
        pytest.param({"upstream_read_timeout": 2}, "upstream_read_timeout_s", 2.0,
                     id="a YAML int timeout is seconds"),
        pytest.param({"upstream": None}, "upstream", None, id="a YAML null upstream"),
        pytest.param({"ram_bytes": 0, "ram_max_object": "1GiB"}, "ram_bytes", 0,
                     id="no RAM tier allows any object limit"),
    ],
)  # fmt: skip
def test_yaml_native_values_parse(
    tmp_path: Path, document: dict[str, object], attribute: str, value: object
) -> None:
    settings = Settings.from_sources({}, BASE_ENV, write_yaml(tmp_path, document))
    assert getattr(settings, attribute) == value


@pytest.mark.parametrize(
    ("env", "disk_dir"),
    [
        pytest.param({"HOME": HOME}, f"{HOME}/.cache/s3tier", id="under HOME by default"),
        pytest.param({"HOME": HOME, "XDG_CACHE_HOME": "/xdg/"}, "/xdg/s3tier",
                     id="XDG_CACHE_HOME wins over HOME"),
        pytest.param({"HOME": HOME, "XDG_CACHE_HOME": "rel"}, f"{HOME}/.cache/s3tier",
                     id="a relative XDG_CACHE_HOME is ignored, as the XDG spec says"),
        pytest.param({"HOME": HOME, "S3TIER_DISK_DIR": "~/blocks"}, f"{HOME}/blocks",
                     id="a leading tilde is expanded"),
        pytest.param({"S3TIER_DISK_DIR": "/srv/cache"}, "/srv/cache",
                     id="an explicit directory needs no HOME"),
    ],
)  # fmt: skip
def test_disk_dir_default_and_expansion(env: dict[str, str], disk_dir: str) -> None:
    assert Settings.from_sources({}, env, None).disk_dir == disk_dir


def test_disk_dir_without_home_or_xdg_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="--disk-dir / S3TIER_DISK_DIR"):
        Settings.from_sources({}, {}, None)


def test_redacted_is_json_with_every_field() -> None:
    settings = Settings.from_sources({}, BASE_ENV, str(EXAMPLE_YAML))
    view = json.loads(json.dumps(settings.redacted()))
    assert set(view) == set(Settings.__dataclass_fields__)
    assert view["ram_bytes"] == 256 * MiB
    assert view["freshness"]["rules"][0] == {
        "bucket": "assets",
        "prefix": "blobs/",
        "mode": "immutable",
    }


def test_auth_defaults_to_sigv4_unless_bound_to_loopback() -> None:
    for host, auth in [
        ("127.0.0.1", "none"),
        ("::1", "none"),
        ("localhost", "none"),
        ("0.0.0.0", "sigv4"),
        ("10.1.2.3", "sigv4"),
        ("proxy.internal", "sigv4"),
    ]:
        assert Settings.from_sources({"host": host}, BASE_ENV).auth == auth, host
    assert Settings.from_sources({"host": "0.0.0.0", "auth": "none"}, BASE_ENV).auth == "none"


def test_example_yaml_parses_and_documents_every_key() -> None:
    document = yaml.safe_load(EXAMPLE_YAML.read_text(encoding="utf-8"))
    assert sorted(document) == sorted(SETTINGS_BY_NAME)
    settings = Settings.from_sources({}, BASE_ENV, str(EXAMPLE_YAML))
    defaults = Settings(disk_dir=f"{HOME}/.cache/s3tier")
    assert settings.freshness.for_key("assets", "blobs/x") == IMMUTABLE
    # Apart from the example freshness rules, the example states the defaults.
    assert settings == Settings(
        **{**{f: getattr(defaults, f) for f in Settings.__dataclass_fields__},
           "freshness": settings.freshness}
    )  # fmt: skip


# --- errors ----------------------------------------------------------------------------------

# name, a bad raw string, and a fragment of the reason given
BAD_VALUES = [
    ("host", " ", "is not a non-empty string"),
    ("port", "65536", "is not a port"),
    ("port", "-1", "is not a port"),
    ("port", "http", "is not a whole number"),
    ("upstream", "ftp://s3.example.com", "is not an http:// or https:// URL"),
    ("upstream", "http://", "is not an http:// or https:// URL"),
    ("upstream", "s3.example.com", "is not an http:// or https:// URL"),
    ("upstream", "http://s3.example.com/bucket", "must have no path"),
    ("upstream", "http://s3.example.com/?x=1", "must have no path"),
    ("upstream", "http://s3.example.com:99999", "has a bad port"),
    ("upstream", "http://key:secret@s3.example.com", "must not carry credentials"),
    ("region", "", "is not a non-empty string"),
    ("base_domain", "", "is not a non-empty string"),
    ("ram_bytes", "12XB", "'12XB' is not a size (use e.g. 64MiB, 10GiB)"),
    ("ram_bytes", "-1", "is not a size"),
    ("ram_max_object", "lots", "is not a size"),
    ("disk_dir", "", "is not a non-empty string"),
    ("disk_bytes", "10 GiBs", "is not a size"),
    ("block_size", "32KiB", "32KiB is outside 64KiB..64MiB"),
    ("block_size", "65MiB", "65MiB is outside 64KiB..64MiB"),
    ("put_cache_max", "lots", "'lots' is not a size"),
    ("prefetch_bytes", "lots", "is not a size"),
    ("readahead_max", "0", "is outside 1..1024"),
    ("prefetch_footer", "parquet", "is not a file suffix"),
    ("freshness", "forever", "is not a freshness"),
    ("freshness", "ttl:-1", "non-negative number of seconds"),
    ("serve_stale_on_error", "maybe", "is not a boolean"),
    ("auth", "kerberos", "is not an auth mode"),
    ("credentials_file", "   ", "is not a non-empty string"),
    ("admin_token", "   ", "is not a non-empty string"),
    ("workers", "0", "at least 1"),
    ("workers", "two", "is not a whole number"),
    ("upstream_connect_timeout", "0", "is not a positive number of seconds"),
    ("upstream_connect_timeout", "soon", "is not a positive number of seconds"),
    ("upstream_read_timeout", "inf", "is not a positive number of seconds"),
    ("upstream_retries", "11", "is outside 0..10"),
    ("header_timeout", "0", "seconds"),
    ("log_level", "verbose", "is not a log level"),
    ("log_format", "xml", "is not a log format"),
    ("shutdown_grace", "-1", "seconds"),
    ("peers", "dns:nowhere", "expected dns:NAME:PORT"),
    ("peers", "127.0.0.1:8080", "expected http(s)://host:port"),
    ("advertise", "ftp://node", "is not an http:// or https:// URL"),
    ("peer_secret", "   ", "is not a non-empty string"),
    ("tls_cert", "   ", "is not a non-empty string"),
    ("tls_key", "   ", "is not a non-empty string"),
    ("tls_ca", "   ", "is not a non-empty string"),
    ("price_get_per_1000", "-1", "is not a price in USD"),
    ("price_egress_per_gib", "free", "is not a price in USD"),
]
BAD_IDS = [f"{name}={raw!r}" for name, raw, _ in BAD_VALUES]


def test_every_setting_has_a_bad_value_case() -> None:
    assert {name for name, _, _ in BAD_VALUES} == set(SETTINGS_BY_NAME)


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_VALUES, ids=BAD_IDS)
def test_a_bad_env_value_names_the_flag_and_env_var(name: str, raw: str, reason: str) -> None:
    row = SETTINGS_BY_NAME[name]
    with pytest.raises(SettingsError) as error:
        from_env(**{row.env_var: raw})
    assert str(error.value).startswith(f"{row.flag} / {row.env_var}: ")
    assert reason in str(error.value)


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_VALUES, ids=BAD_IDS)
def test_a_bad_flag_value_names_the_flag_and_env_var(name: str, raw: str, reason: str) -> None:
    row = SETTINGS_BY_NAME[name]
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({name: raw}, BASE_ENV, None)
    assert str(error.value).startswith(f"{row.flag} / {row.env_var}: ")
    assert reason in str(error.value)


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_VALUES, ids=BAD_IDS)
def test_a_bad_yaml_value_names_the_flag_and_yaml_key(
    tmp_path: Path, name: str, raw: str, reason: str
) -> None:
    path = write_yaml(tmp_path, {name: raw})
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, path)
    assert str(error.value).startswith(f"{SETTINGS_BY_NAME[name].flag} / {name} in {path}: ")
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param({"port": True}, "is not a whole number", id="a YAML bool port"),
        pytest.param({"ram_bytes": -5}, "is not a size", id="a negative YAML size"),
        pytest.param({"ram_bytes": 1.5}, "is not a size", id="a YAML float size"),
        pytest.param({"workers": 1.5}, "is not a whole number", id="a YAML float worker count"),
        pytest.param({"serve_stale_on_error": 2}, "is not a boolean", id="a YAML 2 boolean"),
        pytest.param({"host": 8080}, "is not a non-empty string", id="a YAML int host"),
        pytest.param({"upstream_read_timeout": False}, "positive number of seconds",
                     id="a YAML bool timeout"),
        pytest.param({"log_level": None}, "is not a log level", id="a YAML null log level"),
    ],
)  # fmt: skip
def test_bad_yaml_native_values_are_errors(
    tmp_path: Path, document: dict[str, object], reason: str
) -> None:
    with pytest.raises(SettingsError, match=reason):
        Settings.from_sources({}, BASE_ENV, write_yaml(tmp_path, document))


def test_a_flag_beats_a_bad_env_value_without_reading_it() -> None:
    settings = Settings.from_sources({"port": "81"}, {**BASE_ENV, "S3TIER_PORT": "junk"}, None)
    assert settings.port == 81


def test_an_unknown_yaml_key_is_an_error_suggesting_the_right_one(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"ram_byte": "1GiB"})
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, path)
    assert str(error.value) == f"{path}: unknown key 'ram_byte' (did you mean 'ram_bytes'?)"


def test_an_unknown_yaml_key_unlike_any_lists_the_known_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"zzz": 1})
    with pytest.raises(SettingsError, match=r"unknown key 'zzz' \(known: host, port, "):
        Settings.from_sources({}, BASE_ENV, path)


def test_the_config_key_itself_is_not_a_yaml_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown key 'config'"):
        Settings.from_sources({}, BASE_ENV, write_yaml(tmp_path, {"config": "other.yaml"}))


def test_a_missing_yaml_file_names_config_and_s3tier_config(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, missing)
    assert str(error.value).startswith(f"--config / S3TIER_CONFIG: cannot read {missing!r}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("port: [", "not valid YAML", id="broken YAML"),
        pytest.param("- port\n", "must be a mapping", id="a list at the top"),
        pytest.param("1: x\n", "must be a mapping", id="a non-string key"),
        pytest.param(b"port: \xff\n", "not valid YAML", id="bytes that are not UTF-8"),
    ],
)
def test_a_malformed_yaml_file_is_an_error_naming_it(
    tmp_path: Path, text: str | bytes, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, str(path))
    assert str(error.value).startswith(str(path))
    assert reason in str(error.value)


def test_an_unknown_flag_key_is_an_error() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'ram'"):
        Settings.from_sources({"ram": "1GiB"}, BASE_ENV, None)


def test_a_fleet_needs_its_secret_and_a_parseable_member_list() -> None:
    peers = {"peers": "http://127.0.0.1:8080,http://127.0.0.2:8080"}
    with pytest.raises(SettingsError, match="--peer-secret"):
        Settings.from_sources(peers, BASE_ENV)
    with pytest.raises(SettingsError, match="--peers"):
        Settings.from_sources({"peers": "dns:nowhere", "peer_secret": "s"}, BASE_ENV)
    fleet = Settings.from_sources({**peers, "peer_secret": "s", "port": 8080}, BASE_ENV)
    assert fleet.member_id == "http://127.0.0.1:8080"
    assert fleet.redacted()["peer_secret"] == "***"
    advertised = Settings.from_sources(
        {**peers, "peer_secret": "s", "advertise": "http://h:1"}, BASE_ENV
    )
    assert advertised.member_id == "http://h:1"


def test_a_certificate_goes_with_its_key_and_makes_this_member_an_https_one() -> None:
    with pytest.raises(
        SettingsError, match="--tls-key / S3TIER_TLS_KEY: --tls-cert and --tls-key go"
    ):
        Settings.from_sources({"tls_cert": "c.pem"}, BASE_ENV)
    with pytest.raises(
        SettingsError, match="--tls-cert / S3TIER_TLS_CERT: --tls-cert and --tls-key go"
    ):
        Settings.from_sources({"tls_key": "k.pem"}, BASE_ENV)
    served = Settings.from_sources({"tls_cert": "c.pem", "tls_key": "k.pem"}, BASE_ENV)
    assert served.member_id == "https://127.0.0.1:8080"
