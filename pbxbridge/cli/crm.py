"""`pbxbridge outbox`: what the CRMs and webhooks are owed, delivering it, and trying dead letters again."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.crm import outbox, users
from pbxbridge.crm.bitrix24 import Bitrix24Target
from pbxbridge.crm.connectors import retry_policy, targets_from_config
from pbxbridge.crm.targets import DeliveryFailed
from pbxbridge.crm.worker import OutboxWorker
from pbxbridge.db.engine import make_engine, session_factory


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox status|deliver|retry``."""
    parser = subparsers.add_parser("outbox", help="deliveries of calls to the CRM and webhooks")
    actions = parser.add_subparsers(dest="outbox_command", required=True)

    p = actions.add_parser("status", help="deliveries pending, done and dead per target")
    add_common_options(p)
    p.add_argument("--dead", action="store_true", help="list the dead letters with the reason each gave up")
    p.set_defaults(func=cmd_status)

    p = actions.add_parser("deliver", help="deliver what is due now and exit")
    add_common_options(p)
    p.add_argument("--until-empty", action="store_true",
                   help="keep going, waiting out retry delays, until nothing is pending")
    p.add_argument("--max-wait", type=float, default=None, metavar="SECONDS",
                   help="with --until-empty: give up after this long (what is left stays queued)")
    p.set_defaults(func=cmd_deliver)

    p = actions.add_parser("retry", help="queue a dead letter again (by id), or all of them")
    add_common_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the dead letter's id (see outbox status --dead)")
    which.add_argument("--dead", action="store_true", help="every dead letter")
    p.set_defaults(func=cmd_retry)

    crm = subparsers.add_parser("crm", help="the CRMs' side: which CRM user each manager's extension is")
    crm_actions = crm.add_subparsers(dest="crm_command", required=True)
    people = crm_actions.add_parser("users", help="managers' users in each CRM (extension -> user id)")
    people_actions = people.add_subparsers(dest="users_command")
    add_common_options(people)
    people.set_defaults(func=cmd_users_list)
    p = people_actions.add_parser(
        "sync", argument_default=argparse.SUPPRESS,
        help="read them from the CRM (Bitrix24: each user's inner number)")
    add_common_options(p)
    p.set_defaults(func=cmd_users_sync)
    p = people_actions.add_parser(
        "set", argument_default=argparse.SUPPRESS,
        help="map an extension to a CRM user by hand (a sync keeps it)")
    add_common_options(p)
    p.add_argument("target", choices=("bitrix24", "amocrm"))
    p.add_argument("extension")
    p.add_argument("user_id", help="the user's id in that CRM")
    p.add_argument("--name", default=None, help="the user's name, for the list")
    p.set_defaults(func=cmd_users_set)
    p = people_actions.add_parser("remove", argument_default=argparse.SUPPRESS, help="forget an extension's CRM user")
    add_common_options(p)
    p.add_argument("target", choices=("bitrix24", "amocrm"))
    p.add_argument("extension")
    p.set_defaults(func=cmd_users_remove)


def _local(at: datetime | None, config: Config) -> str:
    if at is None:
        return "-"
    return at.astimezone(ZoneInfo(config.kpi.timezone)).strftime("%d.%m.%Y %H:%M:%S")


def cmd_status(args: argparse.Namespace) -> int:
    config = config_or_exit(args)

    async def read() -> tuple[list[outbox.TargetCounts], list[str]]:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session:
                counts = await outbox.counts(session)
                dead = []
                if args.dead:
                    for row in await outbox.dead_letters(session):
                        dead.append(
                            f"{row.id}  {row.target}  {row.action} of {row.pbx}/{row.linkedid}  "
                            f"{row.attempts} tries  {row.last_error or ''}"
                        )
                return counts, dead
        finally:
            await engine.dispose()

    counts, dead = asyncio.run(read())
    configured = {t.name for t in targets_from_config(config)}
    if not counts:
        print("the outbox is empty" if configured else "no CRM or webhook is configured; the outbox is empty")
    for entry in counts:
        note = "" if entry.target in configured else "  (no longer configured)"
        oldest = f", oldest pending queued {_local(entry.oldest_pending, config)}" if entry.pending else ""
        print(f"{entry.target}: {entry.pending} pending, {entry.done} delivered, {entry.dead} dead{oldest}{note}")
    for line in dead:
        print(line)
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    targets = targets_from_config(config)
    if not targets:
        print("no CRM or webhook is configured: nothing to deliver to", file=sys.stderr)
        return 2

    async def deliver() -> tuple[int, int, int, int]:
        engine = make_engine(config.database.url)
        try:
            sessions = session_factory(engine)
            worker = OutboxWorker(sessions, targets, retry_policy(config))
            if args.until_empty:
                deadline = time.monotonic() + args.max_wait if args.max_wait is not None else None
                tally = await worker.deliver_until_empty(deadline)
            else:
                try:
                    while await worker.deliver_due():
                        pass
                finally:
                    await worker.close()
                tally = worker.tally
            async with sessions() as session:
                left = sum(c.pending for c in await outbox.counts(session) if c.target in worker.targets)
            return tally.delivered, tally.failed, tally.dead, left
        finally:
            await engine.dispose()

    delivered, failed, dead, left = asyncio.run(deliver())
    print(f"delivered {delivered}; {failed} failed tries, {dead} new dead letter(s); {left} still pending")
    return 1 if dead else 0


def cmd_retry(args: argparse.Namespace) -> int:
    config = config_or_exit(args)

    async def retry() -> int:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await outbox.retry(session, datetime.now(UTC), None if args.dead else args.id)
        finally:
            await engine.dispose()

    queued = asyncio.run(retry())
    if not queued and not args.dead:
        print(f"no dead letter with id {args.id}", file=sys.stderr)
        return 1
    print(f"{queued} dead letter(s) queued again")
    return 0


def _in_database(config: Config, work: Any) -> Any:
    async def run() -> Any:
        engine = make_engine(config.database.url)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_users_list(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    rows = _in_database(config, users.listed)
    if not rows:
        print("no manager is mapped to a CRM user (pbxbridge crm users sync, or set)")
    for row in rows:
        name = f"  {row.name}" if row.name else ""
        print(f"{row.target}  {row.extension}  ->  {row.user_id}{name}  ({row.source})")
    return 0


def cmd_users_set(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    if not args.user_id.isdigit():
        print(f"the user id is a number in {args.target}, got {args.user_id!r}", file=sys.stderr)
        return 2

    async def work(session: Any) -> bool:
        return await users.set_user(session, args.target, args.extension, args.user_id, args.name, users.MANUAL,
                                    datetime.now(UTC))

    _in_database(config, work)
    print(f"{args.target}: extension {args.extension} is user {args.user_id}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    config = config_or_exit(args)

    async def work(session: Any) -> bool:
        return await users.remove_user(session, args.target, args.extension)

    if not _in_database(config, work):
        print(f"{args.target}: extension {args.extension} was not mapped", file=sys.stderr)
        return 1
    print(f"{args.target}: extension {args.extension} forgotten")
    return 0


def cmd_users_sync(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    if not config.crm.bitrix24.webhook_url:
        print("crm.bitrix24.webhook_url is not set: only Bitrix24 tells its users' inner numbers "
              "(amoCRM's are set with `pbxbridge crm users set amocrm EXT USER_ID`)", file=sys.stderr)
        return 2
    target = Bitrix24Target(config)

    async def read() -> list[tuple[str, str, str | None]]:
        async with aiohttp.ClientSession() as http:
            return await target.read_users(http)

    try:
        found = asyncio.run(read())
    except DeliveryFailed as exc:
        print(f"Bitrix24 did not list its users: {exc.reason}", file=sys.stderr)
        return 1

    async def work(session: Any) -> int:
        return await users.replace_from_crm(session, target.name, found, datetime.now(UTC))

    changed = _in_database(config, work)
    print(f"bitrix24: {len(found)} user(s) with an inner number, {changed} mapping(s) changed")
    return 0
