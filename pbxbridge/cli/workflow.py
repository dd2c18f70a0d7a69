"""`pbxbridge missed`: clients to call back; `pbxbridge assign`: give cards their manager."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.clients.assign import NO_ASSIGNMENT, reassign
from pbxbridge.db.engine import WRITE, make_engine, session_factory
from pbxbridge.kpi.calendar import iso_local
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.web.display import phone_display
from pbxbridge.workflow.assignment import assign_from_journal
from pbxbridge.workflow.worklist import read_worklist


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``missed`` and ``assign`` commands."""
    missed = subparsers.add_parser(
        "missed", help="clients whose calls nobody answered and whom nobody has reached since, one row each"
    )
    add_common_options(missed)
    missed.add_argument("--json", action="store_true", help="one JSON object per line")
    missed.add_argument("--manager", metavar="EXT", help="the rows of this manager's clients and unassigned ones")
    missed.set_defaults(func=run_missed)

    assign = subparsers.add_parser("assign", help="give client cards their responsible manager")
    add_common_options(assign)
    who = assign.add_mutually_exclusive_group(required=True)
    who.add_argument("--to", metavar="EXT", help="the manager (extension) the cards go to")
    who.add_argument("--nobody", action="store_true", help="take the manager off the cards")
    who.add_argument(
        "--from-calls", action="store_true",
        help="every card nobody chose a manager for gets one from its answered calls (workflow.assign_manager)",
    )
    assign.add_argument("client_ids", nargs="*", type=int, metavar="CLIENT_ID", help="cards to reassign")
    assign.set_defaults(func=run_assign)


def run_missed(args: argparse.Namespace) -> int:
    """Print the open rows, the longest open first."""
    config = config_or_exit(args)
    settings = KpiSettings.from_config(config)
    due_s = config.workflow.callback_due_min * 60.0
    region = config.phone.default_region

    async def read() -> list[dict[str, object]]:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session:
                rows = await read_worklist(session, settings, days=config.workflow.missed_days)
        finally:
            await engine.dispose()
        now = time.time()
        if args.manager:
            rows = [r for r in rows if r.manager in (None, args.manager)]
        return [r.as_dict(now, due_s) for r in rows]

    rows = asyncio.run(read())
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if not rows:
        print("no missed clients waiting for a callback")
        return 0
    zone = settings.zone
    for row in rows:
        number = phone_display(str(row["number"] or ""), region)
        name = row["client_name"] or ""
        manager = row["manager"] or "unassigned"
        flags = " OVERDUE" if row["overdue"] else ""
        print(
            f"{row['client_id']:>6}  {number:<20} {name:<24} missed {row['missed_calls']}x, "
            f"last {iso_local(float(str(row['last_missed_at'])), zone)}, waited {row['waited_s']:.0f} s, "
            f"open {float(str(row['open_s'])) / 60:.0f} min, tries {row['callback_attempts']}, "
            f"manager {manager}{flags}"
        )
    return 0


def run_assign(args: argparse.Namespace) -> int:
    """Reassign the cards named (a person's choice), or fill cards' managers from their calls."""
    config = config_or_exit(args)
    mode = config.workflow.assign_manager
    if args.from_calls:
        if args.client_ids:
            print("--from-calls goes over every card: name no cards", file=sys.stderr)
            return 2
        if mode == NO_ASSIGNMENT:
            print("workflow.assign_manager is 'none': nothing to do", file=sys.stderr)
            return 2
    elif not args.client_ids:
        print("name the cards (client ids) to reassign", file=sys.stderr)
        return 2

    async def run() -> str:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session, session.begin():
                await session.connection(execution_options=WRITE)
                if args.from_calls:
                    changed = await assign_from_journal(session, mode)
                    return f"{changed} card(s) got their manager from their calls"
                try:
                    found = await reassign(session, args.client_ids, None if args.nobody else args.to,
                                           datetime.now(UTC))
                except LookupError:
                    raise SystemExit(f"no manager with extension {args.to!r}") from None
                missing = sorted(set(args.client_ids) - set(found))
                if missing:
                    # Nothing is changed when a card named does not exist: the list was wrong.
                    await session.rollback()
                    raise SystemExit(f"no client card with id {', '.join(map(str, missing))}; nothing changed")
                return f"{len(found)} card(s) now with {'nobody' if args.nobody else args.to}"
        finally:
            await engine.dispose()

    print(asyncio.run(run()))
    return 0
