"""The client's responsible manager in the CRM routes the call when the card names none: Bitrix24's
searchCrmEntities and amoCRM's contact search, each answer kept a while, and a slow CRM never holds a
caller up (routed without it, the answer kept for the next call).

SQLite only: the lookup's protocol and timing depend on no database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import AmoCrmConfig, Bitrix24Config, Config, CrmConfig
from pbxbridge.crm.owners import CrmOwners, owners_from_config
from pbxbridge.crm.users import MANUAL, set_user
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.agi import FastAgiServer
from pbxbridge.routing.line_states import LineStates
from pbxbridge.routing.overflow import OverflowRouter
from pbxbridge.routing.rules import set_rules
from tests.conftest import fresh_database
from tests.fakes_amocrm import TOKEN, FakeAmoCrm
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fakes_webhook import ServerThread
from tests.fixtures_routing import asterisk_agi_call, trace_events

CARD_CLIENT = "+79161110001"  # its card names manager 201
CRM_CLIENT = "+79165550001"  # no card; Bitrix24's contact is user 14 (inner number 204)
MAPPED_CLIENT = "+79165550002"  # no card; Bitrix24's user 15, whom `crm users` maps to 202
STRANGER = "+79165550003"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    async with factory() as db, db.begin():
        ids = {}
        for ext in ("201", "202", "203", "204"):
            manager = Manager(extension=ext, name=f"Manager {ext}")
            db.add(manager)
            await db.flush()
            ids[ext] = manager.id
        client = Client(name="Card client", is_lead=False, created_at=datetime.now(UTC), responsible_manager_id=ids["201"])
        db.add(client)
        await db.flush()
        db.add(ClientPhone(client_id=client.id, number=CARD_CLIENT))
        await set_user(db, "bitrix24", "202", "15", "Manager 202", MANUAL, datetime.now(UTC))
        await set_user(db, "amocrm", "203", "9001", None, MANUAL, datetime.now(UTC))
    await set_rules(factory, {"groups": [{"name": "sales", "members": ["201", "202", "203", "204"]}]})
    yield factory
    await engine.dispose()


@pytest.fixture
def portal() -> Iterator[tuple[FakeBitrix24, ServerThread]]:
    fake = FakeBitrix24(responsible={CRM_CLIENT: 14, MAPPED_CLIENT: 15, CARD_CLIENT: 13})
    server = ServerThread(fake.app).start()
    yield fake, server
    server.stop()


def idle_lines(shared_dir: Path) -> tuple[LineStates, float]:
    events = trace_events(shared_dir, "pjsip-01-inbound-ringall")
    lines = LineStates()
    lines.feed_all(events)
    return lines, float(events[-1]["Timestamp"])


async def route(router: OverflowRouter, caller: str) -> dict[str, str]:
    server = FastAgiServer({"route": router.handle}, host="127.0.0.1", port=0)
    await server.start()
    try:
        return (await asterisk_agi_call(server.port, "route", caller, ["1"])).variables
    finally:
        await server.stop()


async def test_the_crms_responsible_manager_takes_the_call_when_the_card_names_none(
    sessions: async_sessionmaker[AsyncSession], portal: tuple[FakeBitrix24, ServerThread], shared_dir: Path
) -> None:
    fake, server = portal
    config = Config(crm=CrmConfig(bitrix24=Bitrix24Config(webhook_url=fake.webhook_url(server.url))))
    owners = owners_from_config(config, sessions)
    assert owners is not None
    lines, now = idle_lines(shared_dir)
    router = OverflowRouter(sessions, lines, region="RU", clock=lambda: now, crm_owner=owners.owner_of)
    try:
        by_crm = await route(router, "89165550001")  # the carrier's domestic form
        assert (by_crm["PBXB_EXT"], by_crm["PBXB_REASON"]) == ("204", "own_manager")
        mapped = await route(router, MAPPED_CLIENT)
        assert (mapped["PBXB_EXT"], mapped["PBXB_REASON"]) == ("202", "own_manager")
        card = await route(router, CARD_CLIENT)
        assert (card["PBXB_EXT"], card["PBXB_REASON"]) == ("201", "own_manager")
        stranger = await route(router, STRANGER)
        assert stranger["PBXB_REASON"] != "own_manager"
        # Asked again: every answer (a "nobody" too) comes from the cache.
        await route(router, CRM_CLIENT)
        await route(router, STRANGER)
    finally:
        await owners.close()
    searched = [number for method, number in fake.log if method == "searchCrmEntities"]
    # The card's own manager wins: the CRM is not asked about a client whose card names one.
    assert searched == [CRM_CLIENT, MAPPED_CLIENT, STRANGER]


async def test_a_slow_crm_holds_no_caller_up_and_its_answer_serves_the_next_call(
    sessions: async_sessionmaker[AsyncSession], portal: tuple[FakeBitrix24, ServerThread]
) -> None:
    fake, server = portal
    fake.search_delay_s = 0.6
    config = Config(crm=CrmConfig(bitrix24=Bitrix24Config(webhook_url=fake.webhook_url(server.url))))
    owners = owners_from_config(config, sessions)
    assert owners is not None
    owners.timeout_s = 0.2
    try:
        started = time.monotonic()
        assert await owners.owner_of(CRM_CLIENT) is None
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(0.8)
        started = time.monotonic()
        assert await owners.owner_of(CRM_CLIENT) == "204"
        assert time.monotonic() - started < 0.1
    finally:
        await owners.close()
    assert [n for m, n in fake.log if m == "searchCrmEntities"] == [CRM_CLIENT]


async def test_amocrms_responsible_user_is_the_manager_mapped_to_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = FakeAmoCrm(responsible={CRM_CLIENT: 9001, MAPPED_CLIENT: 9999})
    server = ServerThread(account.app).start()
    config = Config(crm=CrmConfig(amocrm=AmoCrmConfig(base_url=server.url, token=TOKEN)))
    owners = owners_from_config(config, sessions)
    assert isinstance(owners, CrmOwners)
    try:
        assert await owners.owner_of(CRM_CLIENT) == "203"
        # amoCRM's user 9999 is nobody's extension: no own manager, rather than a guess.
        assert await owners.owner_of(MAPPED_CLIENT) is None
        assert await owners.owner_of(STRANGER) is None
    finally:
        await owners.close()
        server.stop()
    assert account.searches == [CRM_CLIENT.lstrip("+"), MAPPED_CLIENT.lstrip("+"), STRANGER.lstrip("+")]
