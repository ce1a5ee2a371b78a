"""The ``s3tier`` command line: flags in, a validated Settings out, then the chosen command runs.

Every setting flag is generated from ``config.settings.SETTINGS``, so adding a setting needs no
edit here. Flags default to ``argparse.SUPPRESS``: only flags the user actually typed reach
``Settings.from_sources``, so an absent flag can never mask ``S3TIER_*`` or the YAML file.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config.settings import CONFIG_ENV_VAR, CONFIG_FLAG, SETTINGS, Setting, Settings, SettingsError

PROG = "s3tier"
USAGE_ERROR = 2  # argparse's own exit code for bad usage; a bad setting is bad usage too

Run = Callable[[argparse.Namespace, Mapping[str, str]], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line summary, flag declarations and what it runs."""

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


def main(argv: list[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``s3tier`` console script; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    run: Run = args.run
    try:
        return run(args, os.environ if environ is None else environ)
    except SettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, but a flag named in a help text (``--ram-bytes``) is never split at a dash."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An S3-compatible read-through caching proxy.",
        formatter_class=_HelpFormatter,
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        subparser = subparsers.add_parser(
            command.name,
            help=command.summary,
            description=command.summary,
            formatter_class=_HelpFormatter,
        )
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` plus one flag per row of the settings table."""
    parser.add_argument(
        CONFIG_FLAG,
        dest="config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"YAML settings file; flags and S3TIER_* variables override it [env {CONFIG_ENV_VAR}]",
    )
    group = parser.add_argument_group("settings (flag > S3TIER_* environment > YAML > default)")
    for setting in SETTINGS:
        _add_setting_flag(group, setting)


def _add_setting_flag(group: argparse._ArgumentGroup, setting: Setting) -> None:
    # argparse %-formats help strings, so a literal "%" must be doubled.
    help_text = f"{setting.help} [env {setting.env_var}; default {setting.default_text()}]"
    common: dict[str, Any] = {
        "dest": setting.name,
        "default": argparse.SUPPRESS,
        "help": help_text.replace("%", "%%"),
    }
    if setting.boolean:
        group.add_argument(setting.flag, action=argparse.BooleanOptionalAction, **common)
    else:
        group.add_argument(setting.flag, metavar=setting.metavar, **common)


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from the flags present in ``args`` (absent ones were suppressed), env and YAML."""
    flags = {setting.name: getattr(args, setting.name)
             for setting in SETTINGS if hasattr(args, setting.name)}  # fmt: skip
    return Settings.from_sources(flags, environ, getattr(args, "config", None))


def _serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = settings_from_args(args, environ)
    # Imported here so that parsing, --help and the CLI's tests never load the server stack.
    from proxy import server

    server.serve(settings)
    return 0


def _warm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="s3://BUCKET/PREFIX", help="what to pull into the cache")
    parser.add_argument(
        "--tier",
        choices=("ram", "disk"),
        default="disk",
        help="disk, or RAM as well where objects fit (default disk)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="objects at once (default 4)")
    parser.add_argument(
        "--endpoint",
        default="http://127.0.0.1:8080",
        help="the running s3tier (default http://127.0.0.1:8080)",
    )
    parser.add_argument("--token", default=None,
                        help="admin token under --auth sigv4 [env S3TIER_ADMIN_TOKEN]")  # fmt: skip


def _warm(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from proxy.warmcli import warm

    token = args.token or environ.get("S3TIER_ADMIN_TOKEN")
    try:
        return warm(args.endpoint, args.target, args.tier, args.concurrency, token)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8080",
                        help="the running s3tier (default http://127.0.0.1:8080)")  # fmt: skip
    parser.add_argument("--watch", type=float, nargs="?", const=2.0, default=None,
                        metavar="SECONDS", help="print again every SECONDS (2)")  # fmt: skip
    parser.add_argument("--token", default=None,
                        help="admin token under --auth sigv4 [env S3TIER_ADMIN_TOKEN]")  # fmt: skip


def _stats(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from proxy.statscli import stats

    token = args.token or environ.get("S3TIER_ADMIN_TOKEN")
    try:
        return stats(args.url, token, args.watch)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from tiering import simulate

    simulate.add_arguments(parser)


def _simulate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from tiering import simulate

    return simulate.run(args)


COMMANDS: tuple[Command, ...] = (
    Command("serve", "Run the caching proxy.", add_settings_arguments, _serve),
    Command("warm", "Pull a prefix into a running proxy's cache.", _warm_arguments, _warm),
    Command("stats", "Print a running proxy's figures: hits, savings, tiers, latency.",
            _stats_arguments, _stats),
    Command("simulate", "Replay workloads through the cache policies.", _simulate_arguments,
            _simulate),
)  # fmt: skip
