"""`pbxbridge kpi`: the sales figures per manager per day, and `pbxbridge kpi rebuild`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.report import as_csv, as_json_lines, read_figures
from pbxbridge.kpi.store import KpiRecorder


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``kpi`` command (report) and its ``rebuild`` subcommand."""
    parser = subparsers.add_parser("kpi", help="daily sales figures per manager and for the department")
    add_common_options(parser)
    parser.add_argument("--from", dest="day_from", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="first business day (default: today in kpi.timezone)")
    parser.add_argument("--to", dest="day_to", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="last business day, inclusive (default: the --from day)")
    parser.add_argument("--manager", metavar="EXT", help="one manager's rows only (by extension)")
    parser.add_argument("--hourly", action="store_true", help="one row per local hour instead of per day")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", dest="form", action="store_const", const="json", help="JSON lines (default)")
    form.add_argument("--csv", dest="form", action="store_const", const="csv", help="CSV with a header")
    parser.set_defaults(func=run_report, form="json")
    actions = parser.add_subparsers(dest="kpi_command")
    # SUPPRESS: options left out here must not blank those given before "rebuild".
    rebuild = actions.add_parser(
        "rebuild", help="recompute every figure from the calls table", argument_default=argparse.SUPPRESS
    )
    add_common_options(rebuild)
    rebuild.set_defaults(func=run_rebuild)


def run_report(args: argparse.Namespace) -> int:
    """Print the figures for the chosen days."""
    config = config_or_exit(args)
    settings = KpiSettings.from_config(config)
    day_from = args.day_from or datetime.now(settings.zone).date()
    day_to = args.day_to or day_from
    if day_to < day_from:
        print("--to is before --from", file=sys.stderr)
        return 2

    async def report() -> str:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session:
                rows = await read_figures(session, day_from, day_to, settings, args.manager, args.hourly)
        finally:
            await engine.dispose()
        return as_csv(rows, args.hourly) if args.form == "csv" else as_json_lines(rows)

    sys.stdout.write(asyncio.run(report()))
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    """Recompute the KPI store from the calls table in one transaction."""
    config = config_or_exit(args)
    recorder = KpiRecorder(KpiSettings.from_config(config))

    async def rebuild() -> int:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await recorder.rebuild(session)
        finally:
            await engine.dispose()

    count = asyncio.run(rebuild())
    print(f"KPIs rebuilt from {count} calls", file=sys.stderr)
    return 0
