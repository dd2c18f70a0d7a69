"""`pbxbridge agi-server` as an administrator starts it: a process of its own, spoken to as Asterisk speaks FastAGI."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxbridge.cli.main import main
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.db.engine import make_engine, session_factory, upgrade_async
from pbxbridge.routing.rules import set_rules
from tests.fixtures_routing import asterisk_agi_call

# The client's card: 202 is the responsible manager.
CLIENT = "+79161110002"
SALES = ["201", "202", "203"]
RING_TIMEOUT_S = 25
REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"overflow routing on agi://127\.0\.0\.1:(\d+)/route")


@dataclass
class AgiServerProcess:
    """The running command: its AGI port and everything it has logged so far."""

    process: asyncio.subprocess.Process
    port: int
    log: list[str] = field(default_factory=list)


async def _seed(db_url: str) -> None:
    """Three managers in one sales group, a client whose manager is 202, and the rules saved."""
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            ids: dict[str, int] = {}
            for ext in SALES:
                manager = Manager(extension=ext, name=f"manager {ext}")
                session.add(manager)
                await session.flush()
                ids[ext] = manager.id
            client = Client(
                name="client", is_lead=False, created_at=datetime.now(UTC), responsible_manager_id=ids["202"]
            )
            session.add(client)
            await session.flush()
            session.add(ClientPhone(client_id=client.id, number=CLIENT))
        await set_rules(sessions, {"groups": [{"name": "sales", "members": SALES}], "ring_timeout_s": RING_TIMEOUT_S})
    finally:
        await engine.dispose()


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    # A pipe nobody reads fills up and stalls the server's logging.
    while line := await stream.readline():
        into.append(line.decode(errors="replace").rstrip())


@pytest.fixture
async def agi_server(db_url: str) -> AsyncIterator[AgiServerProcess]:
    """`pbxbridge agi-server --port 0` started as a process; its port read from what it logs."""
    await _seed(db_url)
    # The PBX is a port that refuses connections: line states then stay unknown (idle), so the
    # answers depend on the database and the rules alone, never on when the stream was read.
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBXBRIDGE_")}
    env |= {
        "PBXBRIDGE_PBX__MAIN__HOST": "127.0.0.1",
        "PBXBRIDGE_PBX__MAIN__PORT": str(refusing.getsockname()[1]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxbridge", "agi-server", "--db", db_url, "--host", "127.0.0.1", "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=REPO_ROOT,
    )
    assert process.stderr is not None
    log: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        port = None
        while port is None:
            raw = await asyncio.wait_for(process.stderr.readline(), 60)
            assert raw, "agi-server exited before listening:\n" + "\n".join(log)
            log.append(raw.decode(errors="replace").rstrip())
            if found := LISTENING.search(log[-1]):
                port = int(found[1])
        drain = asyncio.create_task(_drain(process.stderr, log))
        yield AgiServerProcess(process, port, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
        if drain is not None:
            await drain
        refusing.close()


def _cli_json(*argv: str) -> dict[str, object]:
    """Run a pbxbridge command in this process and parse what it prints."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(argv)) == 0
    return json.loads(out.getvalue())


async def test_agi_server_command_routes_and_follows_rule_changes(agi_server: AgiServerProcess, db_url: str) -> None:
    port = agi_server.port
    # The client calls (the carrier sends the domestic 8… form): his own manager's handset rings
    # for the saved rules' ring time.
    first = await asterisk_agi_call(port, "route", "8" + CLIENT[2:], ["1"])
    assert first.variables == {
        "PBXB_ACTION": "dial", "PBXB_DEST": "PJSIP/202", "PBXB_EXT": "202",
        "PBXB_TIMEOUT": str(RING_TIMEOUT_S), "PBXB_TRIED": "202", "PBXB_REASON": "own_manager",
    }
    # 202 let it ring out: the dialplan asks again and a free colleague gets the call, the first
    # of the group when nobody has taken a call today.
    args = ["2", str(RING_TIMEOUT_S), "NOANSWER", "202"]
    second = await asterisk_agi_call(port, "route", CLIENT, args)
    assert (second.variables["PBXB_ACTION"], second.variables["PBXB_EXT"]) == ("dial", "201")
    assert second.variables["PBXB_TRIED"] == "202-201"
    assert second.variables["PBXB_REASON"] == "colleague:ringing_too_long"

    # `pbxbridge routing set` while the server runs: the next call follows the new group, no restart.
    # (In a thread: the command runs its own event loop.)
    changed = {"groups": [{"name": "sales", "members": ["203", "202"]}]}
    await asyncio.to_thread(_cli_json, "routing", "set", "--db", db_url, "--json", json.dumps(changed))
    third = await asterisk_agi_call(port, "route", CLIENT, args)
    assert (third.variables["PBXB_EXT"], third.variables["PBXB_DEST"]) == ("203", "PJSIP/203")

    # A number nobody knows, with no default group: the queue, as `routing show` names it.
    rules = await asyncio.to_thread(_cli_json, "routing", "show", "--db", db_url)
    stranger = await asterisk_agi_call(port, "route", "+79990001122", ["1"])
    assert stranger.variables["PBXB_ACTION"] == "goto"
    assert stranger.variables["PBXB_DEST"] == rules["queue_destination"]
    assert stranger.variables["PBXB_REASON"] == "queue:no_manager"

    # SIGTERM, as systemd stops it: a clean exit, nothing failed along the way.
    agi_server.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(agi_server.process.wait(), 30) == 0
    assert not [line for line in agi_server.log if "Traceback" in line or " ERROR " in line], agi_server.log
