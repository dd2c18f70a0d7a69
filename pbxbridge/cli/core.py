"""Core subcommands: check-config, db upgrade, replay, calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pbxbridge.app import DOMAIN_MODULES, Daemon, attach_domains
from pbxbridge.calls.journal import fetch_journal
from pbxbridge.calls.replay import NewCallCount, replay_into, replay_pbx
from pbxbridge.cli.common import add_common_options, config_from_args, config_or_exit
from pbxbridge.clients.tables import Client
from pbxbridge.config import Config, ConfigError
from pbxbridge.db.engine import make_engine, session_factory, upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the core subcommands to the pbxbridge command line."""
    p = subparsers.add_parser("check-config", help="validate settings; print every problem with its key")
    add_common_options(p)
    p.set_defaults(func=cmd_check_config)

    db = subparsers.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    p = db_sub.add_parser("upgrade", help="create or update the schema to the latest version")
    add_common_options(p)
    p.set_defaults(func=cmd_db_upgrade)

    p = subparsers.add_parser("replay", help="feed captured AMI streams through the call tracker into the journal")
    add_common_options(p)
    p.add_argument("traces", nargs="+", type=Path, metavar="TRACE.ami")
    p.add_argument("--pbx", default=None, metavar="NAME", help="PBX the calls belong to (default: the first one)")
    p.add_argument("--no-deliver", action="store_true",
                   help="queue nothing for the CRM or webhooks (history they must not be sent)")
    p.set_defaults(func=cmd_replay)

    p = subparsers.add_parser("calls", help="print the call journal, oldest first")
    add_common_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--pbx", default=None, metavar="NAME", help="only this PBX's calls")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N calls")
    p.set_defaults(func=cmd_calls)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print 'ok', or each problem with its key and exit 1."""
    try:
        config_from_args(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    print("ok")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or update the schema."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    print("database schema up to date")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay traces into the journal and print one summary line."""
    config = config_or_exit(args)
    missing = [str(p) for p in args.traces if not p.is_file()]
    if missing:
        for path in missing:
            print(f"{path}: no such file", file=sys.stderr)
        return 2
    summary = asyncio.run(replay(args.traces, config, args.pbx, deliver=not args.no_deliver))
    print(
        f"replayed {len(args.traces)} trace(s): {summary['calls']} call(s), "
        f"{summary['new']} new, {summary['again']} already in the journal; "
        f"{summary['clients']} client card(s) in total"
    )
    if summary["failed"]:
        print(f"{summary['failed']} call(s) could not be written (see the log)", file=sys.stderr)
        return 1
    return 0


async def replay(paths: list[Path], config: Config, pbx: str | None, *, deliver: bool = True) -> dict[str, int]:
    """The daemon's pipeline, every domain attached, fed from the captures: calls, new ones, cards, failures.

    What a live PBX's calls get, replayed calls get: the journal, the KPI
    figures, transcription jobs and any other domain's hooks, written in the
    daemon's batches. The daemon is not live: no AMI, web, FastAGI or worker.
    """
    daemon = Daemon(config, live=False)
    # Queued as a live daemon would (sent by `pbxbridge outbox deliver`), unless --no-deliver.
    attach_domains(daemon, DOMAIN_MODULES if deliver else tuple(m for m in DOMAIN_MODULES if m != "pbxbridge.crm.daemon"))
    new_calls = NewCallCount()
    daemon.after_write.append(new_calls.note_written)
    try:
        await daemon.start()
        await replay_into(daemon.follower, daemon.pipeline, paths, replay_pbx(config, pbx))
        await daemon.flush()
        assert daemon.session_factory is not None
        async with daemon.session_factory() as session:
            clients = (await session.execute(select(func.count()).select_from(Client))).scalar_one()
    finally:
        await daemon.stop()
    calls, failed = daemon.stats.calls_finished, daemon.stats.calls_failed
    return {"calls": calls, "new": new_calls.new, "again": calls - new_calls.new - failed, "clients": clients,
            "failed": failed}


def cmd_calls(args: argparse.Namespace) -> int:
    """Print the journal as JSON lines or a table."""
    config = config_or_exit(args)
    entries = asyncio.run(_journal(config, args.pbx, args.limit))
    try:
        if args.json:
            for entry in entries:
                print(json.dumps(entry, ensure_ascii=False))
        else:
            print(_table(entries))
        sys.stdout.flush()
    except BrokenPipeError:
        # `pbxbridge calls | head` closed the pipe early: not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _journal(config: Config, pbx: str | None, limit: int | None) -> list[dict[str, Any]]:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as session:
            return await fetch_journal(session, pbx=pbx, limit=limit)
    finally:
        await engine.dispose()


COLUMNS = (
    ("started_at", "started (UTC)"),
    ("direction", "direction"),
    ("status", "status"),
    ("client_number", "client"),
    ("manager", "manager"),
    ("rang", "rang"),
    ("wait_s", "wait s"),
    ("talk_s", "talk s"),
    ("recording", "recording"),
)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if key == "started_at":
        return str(value).replace("T", " ").rstrip("Z")[:19]
    if key == "recording":
        return "yes"
    return str(value)


def _table(entries: list[dict[str, Any]]) -> str:
    rows = [[title for _key, title in COLUMNS]]
    rows += [[_cell(key, entry.get(key)) for key, _title in COLUMNS] for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.append(f"{len(entries)} call(s)")
    return "\n".join(lines)
