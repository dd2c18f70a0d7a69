"""`pbxbridge routing show|set` and `pbxbridge agi-server` as an administrator runs them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.cli.main import main
from pbxbridge.cli.routing import run_agi_server
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.line_states import LineState
from pbxbridge.routing.live import LineFeed
from pbxbridge.routing.rules import set_rules
from tests.fixtures_routing import asterisk_agi_call


def test_show_then_set_then_show(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBXBRIDGE_ROUTING__RING_TIMEOUT_S", "25")
    assert main(["routing", "show", "--db", db_url]) == 0
    shown = json.loads(capsys.readouterr().out)
    # Nothing saved yet: the [routing] settings are in force.
    assert shown["ring_timeout_s"] == 25
    assert shown["policy"] == "least_busy"
    assert shown["groups"] == []

    change = {"groups": [{"name": "sales", "members": ["201", "202"]}], "policy": "longest_idle", "max_waiting": 4}
    assert main(["routing", "set", "--db", db_url, "--json", json.dumps(change)]) == 0
    capsys.readouterr()
    assert main(["routing", "show", "--db", db_url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["groups"] == [{"name": "sales", "members": ["201", "202"], "policy": None, "queue_destination": None}]
    assert shown["policy"] == "longest_idle"
    assert shown["max_waiting"] == 4
    assert shown["ring_timeout_s"] == 25


def test_set_rejects_bad_rules_and_names_each_problem(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text(json.dumps({"policy": "whoever", "ring_timeout_s": 0, "colour": "red"}), encoding="utf-8")
    assert main(["routing", "set", "--db", db_url, "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "policy: Unknown policy «whoever»: use least_busy, longest_idle, round_robin." in err
    assert "ring_timeout_s: Ring the manager for a whole number of seconds, at least 1, not 0." in err
    assert "colour: Unknown setting colour." in err
    assert main(["routing", "set", "--db", db_url, "--json", "[1, 2"]) == 2
    assert "cannot read the rules" in capsys.readouterr().err


async def test_agi_server_follows_the_pbx_and_routes(db_url: str, shared_dir: Path) -> None:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        manager = Manager(extension="202", name="Olga Smirnova")
        session.add(manager)
        await session.flush()
        client = Client(name="client", is_lead=False, created_at=datetime.now(UTC), responsible_manager_id=manager.id)
        session.add(client)
        await session.flush()
        session.add(ClientPhone(client_id=client.id, number="+79161110002"))
    await set_rules(sessions, {"groups": [{"name": "sales", "members": ["201", "202", "203"]}]})
    await engine.dispose()

    # pjsip-01 replayed at twice the captured speed: the ringall call that 202 answers.
    simulator = AmiSimulator([shared_dir / "pjsip-01-inbound-ringall.ami"], speed=2, username="u", secret="s")
    await simulator.start()
    config = Config()
    config.database.url = db_url
    config.pbx = [PbxConfig(name="main", host="127.0.0.1", port=simulator.port, username="u", secret="s")]
    feed = LineFeed()
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_agi_server(config, port=0, stop=stop, feed=feed, started=started))
    try:
        port = await asyncio.wait_for(started, 30)
        # The login was followed by a refresh of hints, queues and channels.
        for _ in range(200):
            if feed.refreshes >= 1 and feed.lines.line("202").state is LineState.IN_CALL:
                break
            await asyncio.sleep(0.05)
        assert feed.refreshes >= 1
        assert feed.lines.line("202").state is LineState.IN_CALL
        # 202's client calls while 202 talks: a free colleague gets the call.
        outcome = await asterisk_agi_call(port, "route", "+79161110002", ["1"])
        assert outcome.variables["PBXB_ACTION"] == "dial"
        assert outcome.variables["PBXB_EXT"] in ("201", "203")
        assert outcome.variables["PBXB_REASON"] == "colleague:busy"
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)
        await simulator.stop()
