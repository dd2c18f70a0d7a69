"""Each client card's manager from day one: the first (or latest) manager who talked with the
client, from real captured calls; a person's choice never overridden; reassigning in bulk."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.cli.main import main
from pbxbridge.clients.assign import FIRST_ANSWERED, LAST_ANSWERED
from pbxbridge.clients.tables import AUTO, MANUAL, Client, ClientPhone, Manager
from pbxbridge.config import Config, DatabaseConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.workflow.assignment import AssignFromCalls
from tests.test_workflow_missed import calls_of

CLIENT = "+79161119999"


async def write(sessions: async_sessionmaker[AsyncSession], calls: list[FinishedCall], mode: str) -> None:
    config = Config(database=DatabaseConfig(url="sqlite://"))
    writer = CallWriter(sessions, config, after_write=[AssignFromCalls(mode).after_write])
    for call in calls:
        await writer.write(call)


async def manager_of(sessions: async_sessionmaker[AsyncSession], number: str) -> tuple[str | None, str | None]:
    async with sessions() as session:
        row = (await session.execute(
            select(Manager.extension, Client.manager_set_by)
            .select_from(Client)
            .join(ClientPhone, ClientPhone.client_id == Client.id)
            .outerjoin(Manager, Manager.id == Client.responsible_manager_id)
            .where(ClientPhone.number == number)
        )).one()
    return row[0], row[1]


def two_managers(shared_dir: Path) -> tuple[FinishedCall, FinishedCall]:
    """One client's two answered calls: 203 answered the first (01), 202 the second (02)."""
    (first,) = calls_of(shared_dir, "01-inbound-answered", "79161110001", CLIENT[1:])
    (second,) = calls_of(shared_dir, "02-inbound-second-agent", "79161110002", CLIENT[1:])
    assert (first.manager, second.manager) == ("203", "202") and first.started_at < second.started_at
    return first, second


async def test_the_first_manager_who_talked_with_the_client_whatever_order_the_calls_come_in(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    first, second = two_managers(shared_dir)
    # The later call is written first (another PBX link, a replay): the earlier one still wins.
    await write(sessions, [second], FIRST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("202", AUTO)
    await write(sessions, [first], FIRST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("203", AUTO)
    await write(sessions, [second], FIRST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("203", AUTO)


async def test_the_latest_manager_who_talked_with_the_client(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    first, second = two_managers(shared_dir)
    await write(sessions, [first, second], LAST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("202", AUTO)
    await write(sessions, [first], LAST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("202", AUTO)


async def test_nobody_is_assigned_when_the_setting_says_none_and_a_missed_call_assigns_nobody(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    first, _second = two_managers(shared_dir)
    await write(sessions, [first], "none")
    assert await manager_of(sessions, CLIENT) == (None, None)
    await write(sessions, calls_of(shared_dir, "03-inbound-abandoned"), FIRST_ANSWERED)
    assert await manager_of(sessions, "+79161110003") == (None, None)


async def test_a_persons_choice_is_never_overridden_by_calls(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    first, second = two_managers(shared_dir)
    await write(sessions, [second], FIRST_ANSWERED)
    # The head gives the card to 205 on its page (the card's form sets the manager).
    async with sessions() as session, session.begin():
        client = (await session.execute(
            select(Client).join(ClientPhone, ClientPhone.client_id == Client.id).where(ClientPhone.number == CLIENT)
        )).scalar_one()
        session.add(Manager(extension="205", name="Maria Orlova"))
        await session.flush()
        client.responsible_manager_id = (await session.scalar(select(Manager.id).where(Manager.extension == "205")))
    # An earlier call by 203 turns up afterwards: the person's choice stands.
    await write(sessions, [first], FIRST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == ("205", MANUAL)
    # Taking the manager off by hand is a choice too.
    async with sessions() as session, session.begin():
        client = await session.get(Client, client.id)
        assert client is not None
        client.responsible_manager_id = None
    await write(sessions, [first], LAST_ANSWERED)
    assert await manager_of(sessions, CLIENT) == (None, MANUAL)


def test_after_replaying_the_captures_every_answered_callers_card_has_a_manager(db_url: str, shared_dir: Path) -> None:
    traces = sorted(shared_dir.glob("[0-9][0-9]-*.ami")) + sorted(shared_dir.glob("pjsip-*.ami"))
    assert main(["replay", "--db", db_url, *map(str, traces)]) == 0

    async def cards() -> list[tuple[str, str | None, str | None, str | None]]:
        engine = make_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(Call.client_number, Call.manager, Manager.extension, Client.manager_set_by)
                    .join(Client, Client.id == Call.client_id)
                    .outerjoin(Manager, Manager.id == Client.responsible_manager_id)
                    .where(Call.direction == "inbound", Call.status == "answered")
                    .order_by(Call.started_at)
                )
                return [tuple(r) for r in rows.all()]  # type: ignore[misc]
        finally:
            await engine.dispose()

    import asyncio

    rows = asyncio.run(cards())
    assert len(rows) >= 10
    for number, answered_by, manager, set_by in rows:
        assert manager is not None and set_by == AUTO, number
    # A caller answered once has the manager who answered.
    once = {}
    for number, answered_by, manager, _set_by in rows:
        once.setdefault(number, []).append((answered_by, manager))
    for number, pairs in once.items():
        assert pairs[0][1] == pairs[0][0], number


def test_reassigning_in_bulk_from_the_command_line(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [shared_dir / "01-inbound-answered.ami", shared_dir / "02-inbound-second-agent.ami"]
    assert main(["replay", "--db", db_url, *map(str, traces)]) == 0

    async def managers() -> dict[int, tuple[str | None, str | None]]:
        engine = make_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(Client.id, Manager.extension, Client.manager_set_by)
                    .outerjoin(Manager, Manager.id == Client.responsible_manager_id)
                )
                return {cid: (ext, by) for cid, ext, by in rows.all()}
        finally:
            await engine.dispose()

    import asyncio

    before = asyncio.run(managers())
    ids = sorted(before)
    assert {v[0] for v in before.values()} == {"203", "202"}
    capsys.readouterr()
    # A wrong id changes nothing at all.
    with pytest.raises(SystemExit, match="no client card with id 999"):
        main(["assign", "--db", db_url, "--to", "202", *map(str, ids), "999"])
    assert asyncio.run(managers()) == before
    with pytest.raises(SystemExit, match="no manager with extension '299'"):
        main(["assign", "--db", db_url, "--to", "299", *map(str, ids)])
    assert main(["assign", "--db", db_url, "--to", "202", *map(str, ids)]) == 0
    assert asyncio.run(managers()) == {i: ("202", MANUAL) for i in ids}
    # Filling from the calls leaves a person's choice alone.
    assert main(["assign", "--db", db_url, "--from-calls"]) == 0
    assert asyncio.run(managers()) == {i: ("202", MANUAL) for i in ids}
    assert main(["assign", "--db", db_url, "--nobody", str(ids[0])]) == 0
    assert asyncio.run(managers())[ids[0]] == (None, MANUAL)


def test_workflow_settings_are_checked() -> None:
    from pbxbridge.config import ConfigError, config_from_mapping

    config = config_from_mapping({"workflow": {"callback_due_min": 30, "assign_manager": "last_answered"}})
    assert (config.workflow.callback_due_min, config.workflow.assign_manager) == (30, "last_answered")
    assert config_from_mapping({}).workflow.assign_manager == FIRST_ANSWERED
    with pytest.raises(ConfigError) as bad:
        config_from_mapping({"workflow": {"callback_due_min": 0, "assign_manager": "whoever", "due": 5}})
    problems = " ".join(bad.value.problems)
    assert "workflow.callback_due_min" in problems and "workflow.assign_manager" in problems
    assert "workflow.due" in problems


def test_cards_written_before_get_their_manager_from_the_calls(
    db_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = [shared_dir / "01-inbound-answered.ami", shared_dir / "03-inbound-abandoned.ami"]
    monkeypatch.setenv("PBXBRIDGE_WORKFLOW__ASSIGN_MANAGER", "none")
    assert main(["replay", "--db", db_url, *map(str, traces)]) == 0
    monkeypatch.delenv("PBXBRIDGE_WORKFLOW__ASSIGN_MANAGER")

    async def managers() -> dict[str, str | None]:
        engine = make_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(ClientPhone.number, Manager.extension)
                    .join(Client, Client.id == ClientPhone.client_id)
                    .outerjoin(Manager, Manager.id == Client.responsible_manager_id)
                )
                return dict(rows.all())  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    import asyncio

    assert asyncio.run(managers()) == {"+79161110001": None, "+79161110003": None}
    assert main(["assign", "--db", db_url, "--from-calls"]) == 0
    # The caller 203 answered gets 203; the one nobody answered still has nobody.
    assert asyncio.run(managers()) == {"+79161110001": "203", "+79161110003": None}
