"""Speech analytics subcommands: checklist set|list|delete, analyze, checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pbxbridge.analytics.checklist import ChecklistError, parse_checklist
from pbxbridge.analytics.store import (
    analyse_calls,
    call_checks,
    delete_checklist,
    job_progress,
    next_queued_job,
    queue_recheck,
    run_recheck,
    set_checklist,
    stored_checklists,
)
from pbxbridge.analytics.tables import AnalysisJob
from pbxbridge.calls.tables import Call
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the speech analytics subcommands to the pbxbridge command line."""
    p = subparsers.add_parser("checklist", help="the sales scripts' checklists every transcribed call is checked against")
    steps = p.add_subparsers(dest="step", required=True)
    s = steps.add_parser("set", help="store a checklist from a JSON file (a new one, or a new version by its name)")
    add_common_options(s)
    s.add_argument("file", type=Path, metavar="FILE.json", help="one checklist object, or a list of them")
    s.add_argument("--no-recheck", action="store_true", help="do not queue a re-check of past calls")
    s.set_defaults(func=cmd_checklist_set)
    s = steps.add_parser("list", help="the checklists stored")
    add_common_options(s)
    s.add_argument("--json", action="store_true", help="the definitions as JSON")
    s.set_defaults(func=cmd_checklist_list)
    s = steps.add_parser("delete", help="remove a checklist and every call's results against it")
    add_common_options(s)
    s.add_argument("name")
    s.set_defaults(func=cmd_checklist_delete)

    p = subparsers.add_parser("analyze", help="check transcribed calls against the checklists")
    add_common_options(p)
    p.add_argument("linkedids", nargs="*", metavar="LINKEDID", help="calls to check now")
    p.add_argument("--all", action="store_true", help="every transcribed call (runs a queued re-check here)")
    p.add_argument("--status", action="store_true", help="the progress of the latest re-check job")
    p.set_defaults(func=cmd_analyze)

    p = subparsers.add_parser("checks", help="a call's checklist results and conversation figures")
    add_common_options(p)
    p.add_argument("linkedid", metavar="LINKEDID")
    p.add_argument("--pbx", default=None, metavar="NAME")
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p.set_defaults(func=cmd_checks)


def _read_checklists(path: Path) -> list[Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChecklistError([f"{path}: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChecklistError([f"{path}: not JSON ({exc})"]) from None
    return raw if isinstance(raw, list) else [raw]


async def _checklist_set(config: Config, args: argparse.Namespace) -> int:
    try:
        raws = _read_checklists(args.file)
        checklists = []
        problems: list[str] = []
        for n, raw in enumerate(raws):
            try:
                checklists.append(parse_checklist(raw))
            except ChecklistError as exc:
                prefix = f"checklist {n + 1}: " if len(raws) > 1 else ""
                problems += [prefix + p for p in exc.problems]
        if problems:
            raise ChecklistError(problems)
    except ChecklistError as exc:
        # Nothing is stored unless every checklist in the file is right.
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    upgrade(config.database.url)
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as session, session.begin():
            changed_any = False
            for checklist in checklists:
                stored, changed = await set_checklist(session, checklist)
                changed_any |= changed
                state = "stored" if changed else "unchanged"
                print(f"{checklist.name}: {state}, version {stored.version}, {len(checklist.items)} item(s)")
            if changed_any and not args.no_recheck:
                job = await queue_recheck(session, f"checklist set: {', '.join(c.name for c in checklists)}")
                print(f"re-check of past calls queued (job {job}): the daemon runs it, or `pbxbridge analyze --all`")
    finally:
        await engine.dispose()
    return 0


def cmd_checklist_set(args: argparse.Namespace) -> int:
    """Store checklists from a JSON file; every problem is printed and nothing stored if there are any."""
    return asyncio.run(_checklist_set(config_or_exit(args), args))


async def _checklist_list(config: Config, args: argparse.Namespace) -> int:
    upgrade(config.database.url)
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as session:
            stored = await stored_checklists(session)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps([{**s.checklist.as_json(), "version": s.version, "updated_at": s.updated_at.isoformat()}
                          for s in stored], ensure_ascii=False, indent=2))
        return 0
    for s in stored:
        applies = s.checklist.applies
        scope = ", ".join(filter(None, [
            "/".join(applies.directions), "queue " + "/".join(applies.queues) if applies.queues else "",
            f"talk ≥ {applies.min_talk_s:g} s" if applies.min_talk_s else "",
        ])) or "every call"
        print(f"{s.checklist.name} (version {s.version}; {scope})")
        for item in s.checklist.items:
            kind = "must" if item.must else "stop"
            window = f" within {item.within_s:g} s" if item.within_s else f" last {item.last_s:g} s" if item.last_s else ""
            print(f"  [{kind}] {item.title}: {' | '.join(item.phrases)} ({item.side}{window})")
    return 0


def cmd_checklist_list(args: argparse.Namespace) -> int:
    """Print the stored checklists."""
    return asyncio.run(_checklist_list(config_or_exit(args), args))


async def _checklist_delete(config: Config, args: argparse.Namespace) -> int:
    upgrade(config.database.url)
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as session, session.begin():
            found = await delete_checklist(session, args.name)
    finally:
        await engine.dispose()
    if not found:
        print(f"no checklist named {args.name!r}", file=sys.stderr)
        return 1
    print(f"{args.name}: deleted with its results")
    return 0


def cmd_checklist_delete(args: argparse.Namespace) -> int:
    """Remove a checklist."""
    return asyncio.run(_checklist_delete(config_or_exit(args), args))


async def _analyze(config: Config, args: argparse.Namespace) -> int:
    if not args.all and not args.linkedids and not args.status:
        print("name calls by LINKEDID, or --all, or --status", file=sys.stderr)
        return 2
    upgrade(config.database.url)
    engine = make_engine(config.database.url)
    factory = session_factory(engine)
    try:
        if args.status:
            async with factory() as session:
                latest = await session.scalar(select(AnalysisJob.id).order_by(AnalysisJob.id.desc()).limit(1))
                progress = await job_progress(session, latest) if latest is not None else None
            print(json.dumps(progress, ensure_ascii=False) if progress else "no re-check job yet")
            return 0
        if args.all:
            async with factory() as session, session.begin():
                job = await next_queued_job(session) or await queue_recheck(session, "analyze --all")
            began = time.monotonic()

            def shown(done: int, total: int) -> None:
                print(f"\r{done}/{total} calls checked", end="", file=sys.stderr, flush=True)

            counts = await run_recheck(factory, job, progress=shown)
            print(file=sys.stderr)
            print(f"{counts.calls} calls checked ({counts.checks} checklist results, "
                  f"{counts.with_figures} with conversation figures) in {time.monotonic() - began:.1f} s")
            return 0
        async with factory() as session:
            ids = list((await session.scalars(select(Call.id).where(Call.linkedid.in_(args.linkedids)))).all())
            checklists = await stored_checklists(session)
        if not ids:
            print("no such call", file=sys.stderr)
            return 1
        counts = await analyse_calls(factory, ids, checklists)
        print(f"{counts.calls} call(s) checked ({counts.checks} checklist results)")
        return 0
    finally:
        await engine.dispose()


def cmd_analyze(args: argparse.Namespace) -> int:
    """Check calls against the checklists now."""
    return asyncio.run(_analyze(config_or_exit(args), args))


async def _checks(config: Config, args: argparse.Namespace) -> int:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as session:
            found = await call_checks(session, args.linkedid, args.pbx)
    finally:
        await engine.dispose()
    if found is None:
        print(f"no call with linkedid {args.linkedid}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    if not found["checklists"]:
        print("not checked: no transcript yet, or no checklist applies to this call")
    for checklist in found["checklists"]:
        print(f"{checklist['checklist']}: {checklist['items_passed']}/{checklist['items_total']} passed")
        for item in checklist["items"]:
            mark = "ok  " if item["passed"] else "FAIL"
            ev = item["evidence"]
            where = f" at {ev['at_s']:.1f} s ({ev['side'] or 'side unknown'}): «{ev['words']}»" if ev else ""
            why = {"not_said": " not said", "stop_phrase_said": " stop phrase said"}.get(item["reason"] or "", "")
            note = " [one channel: judged on the whole text]" if item["side_unknown"] else ""
            print(f"  {mark} {item['title']}:{why}{where}{note}")
    if found["conversation"]:
        c = found["conversation"]
        print(f"talk share manager {c['manager_share']:.0%} / client {c['client_share']:.0%}; "
              f"longest monologue {c['longest_monologue_s']:.1f} s; interruptions {c['interruptions']}; "
              f"silence {c['silence_share']:.0%}")
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    """Print a call's checklist results."""
    return asyncio.run(_checks(config_or_exit(args), args))
