"""Sign-ins for the demo: one per role, created only in a database with no users yet."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.db.engine import WRITE
from pbxbridge.web.users import add_user, list_users

DEMO_PASSWORD = "pbxbridge-demo"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    role: str
    extension: str | None
    about: str


# Anna (203) is the first handset the demo's sales queue rings: she has the most calls.
DEMO_ACCOUNTS = (
    DemoAccount("head", "head", None, "sales head: everything"),
    DemoAccount("anna", "manager", "203", "manager, extension 203: her calls and clients"),
    DemoAccount("ops", "ops", None, "operations: routing rules, wallboard"),
)


async def ensure_demo_accounts(sessions: async_sessionmaker[AsyncSession]) -> list[DemoAccount]:
    """Create the demo sign-ins unless the database already has users; returns those created."""
    async with sessions() as session, session.begin():
        # Reads, then writes: the write lock is taken first, or a journal write
        # committed in between makes SQLite refuse this transaction at once.
        await session.connection(execution_options=WRITE)
        if await list_users(session):
            return []
        for account in DEMO_ACCOUNTS:
            await add_user(session, account.username, DEMO_PASSWORD, account.role, account.extension)
    return list(DEMO_ACCOUNTS)


def demo_banner(web_url: str, accounts: list[DemoAccount]) -> str:
    """What the demo prints once it is up."""
    lines = ["", "pbxbridge demo is running: the bundled calls replay as a live PBX.", f"  web app:  {web_url}"]
    if accounts:
        lines.append(f"  sign in (password {DEMO_PASSWORD!r}):")
        lines += [f"    {a.username:<6} {a.about}" for a in accounts]
    else:
        lines.append("  sign in with the users already in this database (pbxbridge users list)")
    lines.append("  stop with Ctrl+C")
    return "\n".join(lines) + "\n"
