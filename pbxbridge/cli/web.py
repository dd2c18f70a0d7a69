"""Web subcommands: ``users add``, ``users list``, ``users passwd``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade
from pbxbridge.web.tables import ROLES
from pbxbridge.web.users import UserError, add_user, list_users, set_password


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``users`` subcommands to the pbxbridge command line."""
    users = subparsers.add_parser("users", help="people who sign in to the web app")
    sub = users.add_subparsers(dest="users_command", required=True)

    p = sub.add_parser("add", help="create a user (the password is asked for, or read from stdin)")
    add_common_options(p)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=ROLES,
                   help="head: everything; manager: own calls and clients; ops: routing rules and wallboard")
    p.add_argument("--extension", default=None, help="a manager's handset extension (required for managers)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list users: name, role, extension")
    add_common_options(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("passwd", help="set a user's password (ends their open sessions)")
    add_common_options(p)
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_passwd)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("the passwords differ")
    return first


async def _add(config: Config, args: argparse.Namespace, password: str) -> None:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db, db.begin():
            await add_user(db, args.username, password, args.role, args.extension)
    finally:
        await engine.dispose()


async def _passwd(config: Config, username: str, password: str) -> None:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db, db.begin():
            await set_password(db, username, password)
    finally:
        await engine.dispose()


async def _list(config: Config) -> list[tuple[str, str, str]]:
    engine = make_engine(config.database.url)
    try:
        async with session_factory(engine)() as db:
            return [(u.username, u.role, u.extension or "-") for u in await list_users(db)]
    finally:
        await engine.dispose()


def cmd_add(args: argparse.Namespace) -> int:
    """Create a user; 1 with the reason when it cannot be done."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    try:
        password = _read_password(args.password_stdin)
        asyncio.run(_add(config, args, password))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username} added ({args.role}{', ext ' + args.extension if args.extension else ''})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print one user per line."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    rows = asyncio.run(_list(config))
    width = max((len(r[0]) for r in rows), default=8)
    print(f"{'username'.ljust(width)}  role     extension")
    for username, role, ext in rows:
        print(f"{username.ljust(width)}  {role.ljust(7)}  {ext}")
    print(f"{len(rows)} user(s)")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    """Set a new password."""
    config = config_or_exit(args)
    upgrade(config.database.url)
    try:
        password = _read_password(args.password_stdin)
        asyncio.run(_passwd(config, args.username, password))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"password of {args.username} changed")
    return 0
