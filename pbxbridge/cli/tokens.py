"""`pbxbridge tokens`: API tokens for machines (a CRM's connector, a script) to call the REST API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from zoneinfo import ZoneInfo

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade
from pbxbridge.web.tables import ROLES
from pbxbridge.web.token_table import ApiToken
from pbxbridge.web.tokens import TokenError, create_token, list_tokens, revoke_token


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tokens create|list|revoke``."""
    parser = subparsers.add_parser("tokens", help="API tokens for machines (Authorization: Bearer)")
    actions = parser.add_subparsers(dest="tokens_command", required=True)

    p = actions.add_parser("create", help="make a token; it is printed once and never again")
    add_common_options(p)
    p.add_argument("name", help="what uses it (bitrix24, reports-script)")
    p.add_argument("--role", required=True, choices=ROLES, help="what it may do, as a person of that role")
    p.add_argument("--extension", default=None, help="a manager token's handset (click-to-call rings it)")
    p.set_defaults(func=cmd_create)

    p = actions.add_parser("list", help="the tokens: name, role, made, last used, revoked")
    add_common_options(p)
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("revoke", help="refuse a token from its next request on")
    add_common_options(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_revoke)


async def _create(config: Config, name: str, role: str, extension: str | None) -> str:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db, db.begin():
            _, secret = await create_token(db, name, role, extension)
            return secret
    finally:
        await engine.dispose()


async def _revoke(config: Config, name: str) -> None:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db, db.begin():
            await revoke_token(db, name)
    finally:
        await engine.dispose()


async def _list(config: Config) -> list[ApiToken]:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db:
            return await list_tokens(db)
    finally:
        await engine.dispose()


def cmd_create(args: argparse.Namespace) -> int:
    """Print the new token on stdout alone (for a script to capture), the advice on stderr."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    try:
        secret = asyncio.run(_create(config, args.name, args.role, args.extension))
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(secret)
    print(f"token {args.name} made ({args.role}); it is shown only now: keep it where the machine reads it, "
          "and send it as 'Authorization: Bearer <token>'", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """One token per line, times in the department's time zone."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    zone = ZoneInfo(config.kpi.timezone)
    rows = asyncio.run(_list(config))
    width = max((len(r.name) for r in rows), default=4)
    print(f"{'name'.ljust(width)}  role     ext    made              last used         revoked")
    for r in rows:
        made, used, revoked = (t.astimezone(zone).strftime("%d.%m.%Y %H:%M") if t else "-"
                               for t in (r.created_at, r.last_used_at, r.revoked_at))
        print(f"{r.name.ljust(width)}  {r.role.ljust(7)}  {(r.extension or '-').ljust(5)}  "
              f"{made.ljust(16)}  {used.ljust(16)}  {revoked}")
    print(f"{len(rows)} token(s)")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke by name; 1 when there is no such token."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    try:
        asyncio.run(_revoke(config, args.name))
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"token {args.name} revoked: refused from its next request on")
    return 0
