"""Routing inside the running daemon: refresh after login, click-to-call to the card, AGI answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RoutingConfig
from pbxbridge.routing.daemon import RoutingComponent, attach
from pbxbridge.routing.sim_originate import OriginateSimulation
from tests.fixtures_ami import wait_until
from tests.fixtures_routing import asterisk_agi_call

USER, SECRET = "pbxbridge", "s3cret"


async def test_daemon_routes_and_places_click_to_call(db_url: str, shared_dir: Path) -> None:
    simulator = AmiSimulator([], speed=0, username=USER, secret=SECRET)
    originate = OriginateSimulation(traces_dir=shared_dir)
    originate.install(simulator)
    await simulator.start()
    config = Config(
        database=DatabaseConfig(url=db_url),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=simulator.port, username=USER, secret=SECRET)],
        routing=RoutingConfig(agi_port=0),
    )
    daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05, "backoff_cap_s": 0.2})
    routing: RoutingComponent = attach(daemon.hub)
    written: list[FinishedCall] = []
    daemon.call_subscribers.append(lambda call, row: written.append(call))
    try:
        await daemon.start()
        assert daemon.session_factory is not None
        async with daemon.session_factory() as session, session.begin():
            manager = Manager(extension="201", name="Ivan Petrov")
            session.add(manager)
            await session.flush()
            client = Client(name="Romashka LLC", is_lead=False, created_at=datetime.now(UTC),
                            responsible_manager_id=manager.id)
            session.add(client)
            await session.flush()
            session.add(ClientPhone(client_id=client.id, number="+79162220001"))
        # The login's FullyBooted made the daemon ask for hints, queues and channels.
        await wait_until(lambda: routing.feeds["main"].refreshes >= 1)

        # The client calls in: the AGI the daemon serves sends the call to the client's manager.
        assert routing.agi is not None
        outcome = await asterisk_agi_call(routing.agi.port, "route", "89162220001", ["1"])
        assert outcome.variables["PBXB_DEST"] == "PJSIP/201"
        assert outcome.variables["PBXB_REASON"] == "own_manager"

        # Then the manager calls the client back with one click.
        request = await routing.click_to_call["main"].call("201", "+7 916 222-00-01")
        resolved = await asyncio.wait_for(routing.click_to_call["main"].wait_resolved(request.request_id), 15)
        await wait_until(lambda: any(c.linkedid == resolved.linkedid for c in written))
        async with daemon.session_factory() as session:
            row = (await session.execute(select(Call).where(Call.linkedid == resolved.linkedid))).scalar_one()
        # On the client's card, placed by the manager who clicked.
        assert row.client_id == client.id
        assert row.manager == "201"
        assert row.direction == "outbound"
        assert row.originated is True
    finally:
        await daemon.stop()
        await simulator.stop()
