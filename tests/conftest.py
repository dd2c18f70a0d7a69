"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, the captured AMI traces."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.db.engine import make_engine, session_factory, upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("PBXBRIDGE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PBXBRIDGE_TEST_PG_PORT", "5432"))
PG_ADMIN_DB = "test"
# Trust auth: the server may know us as postgres or as the login user (root in containers).
PG_USERS = ("postgres", "root")


async def _pg_admin(sql: str) -> str:
    """Run one statement against the admin database; return the user that worked."""
    errors: list[str] = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database=PG_ADMIN_DB, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{user}: {exc}")
            continue
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return user
    raise RuntimeError(f"PostgreSQL at {PG_HOST}:{PG_PORT} unreachable ({'; '.join(errors)})")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrating once and copying keeps each test's fresh database cheap.
    path = tmp_path_factory.mktemp("db-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[tuple[str, str]]:
    name = f"pbxb_tpl_{uuid.uuid4().hex[:12]}"
    user = asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}")
        yield user, name
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> Iterator[str]:
    """A fresh database copied from the migrated template ("sqlite" or "postgresql"), dropped after."""
    if backend == "sqlite":
        path = directory / "pbxbridge.sqlite3"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    user, template = request.getfixturevalue("_pg_template")
    name = f"pbxb_{uuid.uuid4().hex[:16]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database, schema upgraded to every head; PostgreSQL is never skipped."""
    yield from fresh_database(request, request.param, tmp_path)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a fresh database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The captured AMI streams, ground truth and recordings."""
    override = os.environ.get("PBXBRIDGE_SHARED")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "ami-traces"
    assert (path / "expected.json").is_file(), f"captured AMI traces not found at {path}"
    return path


@pytest.fixture(scope="session")
def expected(shared_dir: Path) -> dict[str, Any]:
    """expected.json: the scripted ground truth per scenario."""
    return json.loads((shared_dir / "expected.json").read_text(encoding="utf-8"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each test module on one test process (its module fixtures are built once), and every
    browser test on one process: they share one daemon and one Chromium, in the order written."""
    for item in items:
        path = Path(str(item.path))
        group = "browser" if path.parent.name == "e2e" else path.stem
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A PostgreSQL-parametrised test that skips is a failure: both databases must be exercised."""
    report = yield
    callspec = getattr(item, "callspec", None)
    if report.skipped and callspec is not None and callspec.params.get("db_url") == "postgresql":
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL test skipped ({report.longrepr}); the suite must run on PostgreSQL"
    return report
