"""`pbxbridge kpi`: the sales figures per manager per day (or the calls behind one), and `pbxbridge kpi rebuild`."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from pbxbridge.analytics.kpi import speech_parts
from pbxbridge.calls.tables import Call
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.drilldown import LEADS, LISTINGS, DrillDown, DrillDownError, drill_down, listing_of
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
    parser.add_argument("--calls", metavar="FIGURE",
                        help="instead of the figures, the calls (or lead cards) behind one of them, as many as it counts")
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
    if args.calls:
        return _figure_calls(config.database.url, args, settings, day_from, day_to)

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
                return await recorder.rebuild(session, speech=speech_parts)
        finally:
            await engine.dispose()

    count = asyncio.run(rebuild())
    print(f"KPIs rebuilt from {count} calls", file=sys.stderr)
    return 0


def _figure_calls(url: str, args: argparse.Namespace, settings: KpiSettings, day_from: date, day_to: date) -> int:
    """Print the rows behind one figure (JSON lines or CSV), and on stderr how many: the figure."""
    try:
        listing_of(args.calls, args.manager)
    except DrillDownError as exc:
        print(f"--calls: {exc} (figures: {', '.join(LISTINGS)})", file=sys.stderr)
        return 2

    async def rows() -> tuple[DrillDown, list[dict[str, Any]]]:
        engine = make_engine(url)
        try:
            async with session_factory(engine)() as session:
                found = await drill_down(session, args.calls, day_from, day_to, args.manager, settings)
                if found.unit == LEADS:
                    return found, [{"client_id": client_id} for client_id in found.client_ids]
                calls = {
                    c.id: c for c in await session.scalars(select(Call).where(Call.id.in_(found.call_ids)))
                } if found.call_ids else {}
        finally:
            await engine.dispose()
        return found, [_call_row(calls[i], found.calls_per_row.get(i, 1), settings) for i in found.call_ids if i in calls]

    found, items = asyncio.run(rows())
    if args.form == "csv":
        fields = list(items[0]) if items else ["call_id"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in item.items()} for item in items)
        sys.stdout.write(out.getvalue())
    else:
        sys.stdout.write(as_json_lines(items))
    print(f"{args.calls}: {found.count} {found.unit}", file=sys.stderr)
    return 0


def _call_row(call: Call, counted: int, settings: KpiSettings) -> dict[str, Any]:
    return {
        "call_id": call.id,
        "started_at": call.started_at.astimezone(settings.zone).isoformat(timespec="seconds"),
        "direction": call.direction,
        "status": call.status,
        "client_number": call.client_number,
        "manager": call.manager,
        "wait_s": call.wait_s,
        "talk_s": call.talk_s,
        # A per-client figure's row stands for this many of the client's calls that day.
        "calls_counted": counted,
    }
