"""Options every subcommand shares: which config file, database and recordings root."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pbxbridge.config import Config, ConfigError, default_config_path, load_config


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add --config FILE, --db URL and --recordings DIR to a subcommand."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML settings file (default: $PBXBRIDGE_CONFIG, else built-in defaults)",
    )
    parser.add_argument("--db", default=None, metavar="URL", help="database URL (sqlite:///… or postgresql://…)")
    parser.add_argument("--recordings", default=None, metavar="DIR", help="recordings root (the PBX's monitor dir)")


def config_path_from_args(args: argparse.Namespace) -> Path | None:
    """The config file named on the command line, else $PBXBRIDGE_CONFIG, else none."""
    return getattr(args, "config", None) or default_config_path()


def config_from_args(args: argparse.Namespace) -> Config:
    """Load settings, then let --db and --recordings win over file and environment."""
    # Passed as overrides so that the same validation names a bad --db URL.
    env = dict(os.environ)
    db = getattr(args, "db", None)
    if db:
        env["PBXBRIDGE_DATABASE__URL"] = db
    recordings = getattr(args, "recordings", None)
    if recordings:
        env["PBXBRIDGE_RECORDINGS__ROOT"] = str(recordings)
    return load_config(config_path_from_args(args), env)


def config_or_exit(args: argparse.Namespace) -> Config:
    """`config_from_args`, printing every problem and exiting 1 when the settings are bad."""
    try:
        return config_from_args(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None
