"""Specification of config.derived: size defaults that follow the sizes the user set, and
conflicts raised only between sizes the user gave, naming both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config import derived
from config.settings import SETTINGS, SETTINGS_BY_NAME, Settings, SettingsError

KiB, MiB, GiB, TiB = 2**10, 2**20, 2**30, 2**40
BASE_ENV = {"HOME": "/home/tester"}
README = Path(__file__).resolve().parent.parent / "README.md"
DEFAULT_SIZES = {"ram_bytes": 256 * MiB, "disk_bytes": 10 * GiB, "workers": 1,
                 "block_size": MiB, "ram_max_object": 0, "put_cache_max": 0,
                 "prefetch_bytes": 0}  # fmt: skip


def sizes(**changed: int) -> dict[str, int]:
    """Every derived setting derived, from the defaults with ``changed`` applied."""
    return derived.derive({**DEFAULT_SIZES, **changed}, given=set(changed))


def from_flags(**flags: str) -> Settings:
    return Settings.from_sources(flags, BASE_ENV, None)


# --- the rules, as pure functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ram_bytes", "ram_max_object"),
    [
        pytest.param(0, 0, id="no RAM tier, nothing in RAM"),
        pytest.param(2 * MiB, 512 * KiB, id="a quarter of a small RAM tier"),
        pytest.param(64 * MiB, 16 * MiB, id="a quarter reaches the cap"),
        pytest.param(256 * MiB, 16 * MiB, id="the default RAM tier keeps the old default"),
        pytest.param(64 * GiB, 16 * MiB, id="a huge RAM tier stays at the cap"),
    ],
)
def test_an_unset_ram_max_object_is_a_quarter_of_ram_at_most_16mib(
    ram_bytes: int, ram_max_object: int
) -> None:
    assert sizes(ram_bytes=ram_bytes)["ram_max_object"] == ram_max_object


@pytest.mark.parametrize(
    ("changed", "put_cache_max"),
    [
        pytest.param({}, 64 * MiB, id="the defaults keep the old default"),
        pytest.param({"disk_bytes": 100 * MiB}, 25 * MiB, id="a quarter of a small disk tier"),
        pytest.param({"disk_bytes": 8 * MiB}, 16 * MiB, id="never below what RAM would take"),
        pytest.param({"disk_bytes": 0}, 16 * MiB, id="no disk tier: what RAM would take"),
        pytest.param({"disk_bytes": 0, "ram_bytes": 0}, 0, id="no tier at all: none"),
        pytest.param({"disk_bytes": 0, "ram_max_object": MiB}, MiB,
                     id="follows a given object limit"),
        pytest.param({"disk_bytes": 4 * MiB, "ram_bytes": 0}, MiB,
                     id="RAM off: a quarter of the disk alone"),
    ],
)  # fmt: skip
def test_an_unset_put_cache_max_follows_the_tiers_that_would_keep_the_body(
    changed: dict[str, int], put_cache_max: int
) -> None:
    assert sizes(**changed)["put_cache_max"] == put_cache_max


@pytest.mark.parametrize(
    ("changed", "prefetch_bytes"),
    [
        pytest.param({}, 64 * MiB, id="the defaults keep the old default"),
        pytest.param({"ram_bytes": 2 * MiB, "disk_bytes": 0}, 512 * KiB,
                     id="a quarter of a small cache"),
        pytest.param({"ram_bytes": 0, "disk_bytes": 0}, 0, id="no cache: no read-ahead"),
        pytest.param({"ram_bytes": 0, "disk_bytes": 256 * MiB, "workers": 4}, 16 * MiB,
                     id="workers share the disk tier"),
        pytest.param({"ram_bytes": 2 * MiB, "disk_bytes": 1 * TiB}, 64 * MiB,
                     id="a huge cache stays at the cap"),
    ],
)  # fmt: skip
def test_an_unset_prefetch_budget_is_a_quarter_of_the_cache_it_fills_at_most_64mib(
    changed: dict[str, int], prefetch_bytes: int
) -> None:
    assert sizes(**changed)["prefetch_bytes"] == prefetch_bytes


def test_a_given_value_is_never_replaced_by_its_rule() -> None:
    given = {"ram_bytes": 2 * MiB, "ram_max_object": 1, "put_cache_max": 2, "prefetch_bytes": 3}
    assert derived.derive({**DEFAULT_SIZES, **given}, given.keys()) == {**DEFAULT_SIZES, **given}


def test_the_settings_defaults_are_what_the_rules_derive_from_the_other_defaults() -> None:
    built = Settings.from_sources({}, BASE_ENV)
    for name in derived.DERIVED:
        attribute = SETTINGS_BY_NAME[name].attribute
        assert getattr(built, attribute) == getattr(Settings(), attribute), name


def test_every_rule_names_only_real_flags() -> None:
    flags = {row.flag for row in SETTINGS}
    for derivation in derived.DERIVATIONS:
        named = set(re.findall(r"--[a-z-]+", derivation.rule))
        assert named and named <= flags, derivation.rule


# --- one size set alone never fails --------------------------------------------------------------

# Each size setting at its smallest and largest sensible value (tests/test_size_settings_e2e.py
# starts a server with each of these).
EXTREMES = [
    ("ram_bytes", "0"), ("ram_bytes", "64KiB"), ("ram_bytes", "2MiB"), ("ram_bytes", "1TiB"),
    ("ram_max_object", "0"), ("ram_max_object", "5GiB"),
    ("disk_bytes", "0"), ("disk_bytes", "1MiB"), ("disk_bytes", "100TiB"),
    ("block_size", "64KiB"), ("block_size", "64MiB"),
    ("put_cache_max", "0"), ("put_cache_max", "5GiB"),
    ("prefetch_bytes", "0"), ("prefetch_bytes", "64KiB"), ("prefetch_bytes", "1TiB"),
    ("readahead_max", "1"), ("readahead_max", "1024"),
    ("workers", "1"), ("workers", "4"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), EXTREMES, ids=[f"{n}={v}" for n, v in EXTREMES])
def test_one_size_set_alone_is_accepted_as_given(name: str, value: str) -> None:
    settings = from_flags(**{name: value})
    row = SETTINGS_BY_NAME[name]
    assert getattr(settings, row.attribute) == row.parse(value)


def test_a_small_ram_tier_alone_starts_with_a_quarter_of_it_as_the_object_limit() -> None:
    settings = from_flags(ram_bytes="2MiB")
    assert (settings.ram_bytes, settings.ram_max_object_bytes) == (2 * MiB, 512 * KiB)


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"S3TIER_RAM_MAX_OBJECT": ""}, id="an empty variable"),
        pytest.param({"S3TIER_RAM_MAX_OBJECT": "  "}, id="a blank variable"),
    ],
)
def test_an_empty_derived_setting_is_derived(env: dict[str, str]) -> None:
    settings = Settings.from_sources({"ram_bytes": "8MiB"}, {**BASE_ENV, **env})
    assert settings.ram_max_object_bytes == 2 * MiB


def test_a_yaml_null_derived_setting_is_derived_even_over_a_lower_layer(tmp_path: Path) -> None:
    path = tmp_path / "s3tier.yaml"
    path.write_text(yaml.safe_dump({"ram_bytes": "8MiB", "put_cache_max": None}), "utf-8")
    settings = Settings.from_sources({}, BASE_ENV, str(path))
    assert (settings.ram_max_object_bytes, settings.put_cache_max_bytes) == (2 * MiB, 64 * MiB)


def test_an_empty_value_of_a_setting_without_a_rule_is_still_an_error() -> None:
    with pytest.raises(SettingsError, match="--ram-bytes / S3TIER_RAM_BYTES: '' is not a size"):
        Settings.from_sources({}, {**BASE_ENV, "S3TIER_RAM_BYTES": ""})


# --- conflicts: only between given values, naming both -------------------------------------------

# flags given, and the two (or three) settings the message must name, in order
CONFLICTS = [
    pytest.param({"ram_bytes": "8MiB", "ram_max_object": "16MiB"},
                 "--ram-max-object / S3TIER_RAM_MAX_OBJECT: 16MiB exceeds "
                 "--ram-bytes / S3TIER_RAM_BYTES (8MiB): ", id="ram_max_object over ram_bytes"),
    pytest.param({"disk_bytes": "32MiB", "put_cache_max": "64MiB"},
                 "--put-cache-max / S3TIER_PUT_CACHE_MAX: 64MiB exceeds "
                 "--disk-bytes / S3TIER_DISK_BYTES (32MiB): ", id="put_cache_max over disk_bytes"),
    pytest.param({"ram_bytes": "2MiB", "disk_bytes": "0", "prefetch_bytes": "64MiB"},
                 "--prefetch-bytes / S3TIER_PREFETCH_BYTES: 64MiB exceeds "
                 "--ram-bytes / S3TIER_RAM_BYTES (2MiB) + --disk-bytes / S3TIER_DISK_BYTES (0B): ",
                 id="prefetch_bytes over the whole cache"),
    pytest.param({"block_size": "4MiB", "prefetch_bytes": "1MiB"},
                 "--prefetch-bytes / S3TIER_PREFETCH_BYTES: 1MiB is less than "
                 "--block-size / S3TIER_BLOCK_SIZE (4MiB): ", id="prefetch_bytes under a block"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "start"), CONFLICTS)
def test_two_given_sizes_that_disagree_are_an_error_naming_both(
    flags: dict[str, str], start: str
) -> None:
    with pytest.raises(SettingsError) as error:
        from_flags(**flags)
    assert str(error.value).startswith(start)


@pytest.mark.parametrize(("flags", "start"), CONFLICTS)
def test_a_conflict_needs_every_side_given(flags: dict[str, str], start: str) -> None:
    for left_out in flags:
        from_flags(**{name: value for name, value in flags.items() if name != left_out})


def test_a_conflict_names_the_yaml_keys_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "s3tier.yaml"
    path.write_text(yaml.safe_dump({"ram_bytes": "4MiB", "ram_max_object": "8MiB"}), "utf-8")
    with pytest.raises(SettingsError) as error:
        Settings.from_sources({}, BASE_ENV, str(path))
    assert str(error.value).startswith(
        f"--ram-max-object / ram_max_object in {path}: 8MiB exceeds "
        f"--ram-bytes / ram_bytes in {path} (4MiB): "
    )


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"ram_bytes": "0", "ram_max_object": "1GiB"}, id="RAM off: no object limit"),
        pytest.param({"disk_bytes": "0", "put_cache_max": "1GiB"}, id="disk off: no PUT limit"),
        pytest.param({"prefetch_bytes": "0", "block_size": "64MiB"}, id="read-ahead off"),
        pytest.param({"ram_bytes": "16MiB", "ram_max_object": "16MiB"}, id="equal is fine"),
    ],
)
def test_a_switched_off_or_equal_side_is_no_conflict(flags: dict[str, str]) -> None:
    from_flags(**flags)


# --- documentation -------------------------------------------------------------------------------


def readme_settings_rows() -> dict[str, str]:
    """The README settings table: each flag of the first column -> the default column."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`--"):
            for flag in re.findall(r"`(--[a-z-]+)`", cells[0]):
                rows[flag] = cells[2].replace("`", "")
    return rows


def test_the_readme_settings_table_states_each_derived_default() -> None:
    rows = readme_settings_rows()
    for derivation in derived.DERIVATIONS:
        assert rows[SETTINGS_BY_NAME[derivation.name].flag] == derivation.rule
