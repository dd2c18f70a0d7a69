"""`pbxbridge retention apply`: delete recordings and transcripts older than the settings keep."""

from __future__ import annotations

import argparse
import asyncio
import logging

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade_async
from pbxbridge.service import logging as service_logging
from pbxbridge.service.retention import RetentionReport, apply_retention
from pbxbridge.transcription.retention import expire_transcripts
from pbxbridge.web.audit import system_entry


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``retention`` command and its ``apply`` subcommand."""
    parser = subparsers.add_parser("retention", help="delete old recordings and transcripts ([retention] settings)")
    actions = parser.add_subparsers(dest="retention_command", required=True)
    apply = actions.add_parser(
        "apply", help="delete recording files and transcripts of calls older than retention.*_days"
    )
    add_common_options(apply)
    apply.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    apply.set_defaults(func=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    """Apply the retention settings once; prints one line per action and a summary."""
    config = config_or_exit(args)
    handler = service_logging.make_handler(config.log.format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log.level)
    service_logging.install(config, root)
    if config.retention.recordings_days == 0 and config.retention.transcripts_days == 0:
        print("retention: recordings_days and transcripts_days are 0: everything is kept")
        return 0
    report = asyncio.run(_apply(config, args.dry_run))
    print(report.summary())
    return 0


async def _apply(config: Config, dry_run: bool) -> RetentionReport:
    await upgrade_async(config.database.url)
    engine = make_engine(config.database.url)
    try:
        return await apply_retention(
            session_factory(engine), config, dry_run=dry_run, audit=system_entry, transcripts=expire_transcripts
        )
    finally:
        await engine.dispose()
