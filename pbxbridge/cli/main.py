"""pbxbridge: Asterisk/FreePBX sales calls on client cards, transcribed, searchable, measured."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module has ``register(subparsers)``; a subcommand sets ``func`` to a
# callable taking the parsed arguments and returning an exit code.
COMMAND_MODULES = (
    "pbxbridge.cli.core",
    "pbxbridge.cli.daemon",
    "pbxbridge.cli.transcription",
    "pbxbridge.cli.kpi",
    "pbxbridge.cli.routing",
    "pbxbridge.cli.web",
    "pbxbridge.cli.service",
    "pbxbridge.cli.crm",
    "pbxbridge.cli.tokens",
    "pbxbridge.cli.workflow",
    "pbxbridge.cli.backfill",
    "pbxbridge.cli.analytics",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pbxbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
