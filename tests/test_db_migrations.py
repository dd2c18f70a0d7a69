"""The migrations build exactly the schema the ORM tables describe, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from pbxbridge.db.base import Base
from pbxbridge.db.engine import alembic_config, load_all_tables, make_engine


def _modelled(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Full-text search tables and expression indexes are made in SQL beside the models.
    return not (reflected and compare_to is None and type_ in ("table", "index"))


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _modelled})
    return compare_metadata(context, Base.metadata)


def test_migrated_schema_matches_tables(db_url: str) -> None:
    load_all_tables()

    async def run() -> list[Any]:
        engine = make_engine(db_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_diff)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == []


def test_every_domain_branches_from_core(db_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(db_url))
    for head in script.get_heads():
        lineage = [rev.revision for rev in script.walk_revisions("base", head)]
        assert lineage[-1] == "0001_core", head
