"""A PBX connection drop leaves no ghosts: the live views forget the PBX, then take what it lists.

Callers waiting in a queue when the AMI session drops must vanish from the wallboard
(``/api/live/snapshot`` and the ``/api/live`` WebSocket), from the live KPI gauge and from
routing's line states; after the next login, who waits is what the PBX answers to
``QueueStatus``, not what was remembered from before the drop.

The calls are captured streams (``03-inbound-abandoned``, ``01-inbound-answered``) replayed
by the simulator over TCP and cut mid-wait with its drop injection. The captures hold no
``QueueStatus`` answer: the simulator answers from what it has replayed so far
(``pbxbridge.ami.live_state``), in the shape Asterisk documents for its AMI events
``QueueParams``, ``QueueMember``, ``QueueEntry`` (Queue, Position, Channel, Uniqueid,
CallerIDNum, CallerIDName, ConnectedLineNum, ConnectedLineName, Wait, Priority) and
``QueueStatusComplete`` (docs.asterisk.org, Asterisk 18-22 API documentation, AMI_Events);
the ``QueueEntry`` frames built by hand below follow the same documentation.

The drop reaches the views through the daemon's hub (``Hub.on_pbx_dropped``); the rebuild
follows each login's ``FullyBooted`` greeting. A second login is held back at the simulator
(``LoginGate``) so that the disconnected view can be looked at; nothing waits on a clock,
only on events and conditions.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener
from pbxbridge.ami.simulator import AmiSimulator, ClientSession
from pbxbridge.ami.traces import Trace, load_trace
from pbxbridge.app import Daemon
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.config import (
    Config,
    DatabaseConfig,
    PbxConfig,
    RecordingsConfig,
    RoutingConfig,
    WebConfig,
)
from pbxbridge.kpi import daemon as kpi_daemon
from pbxbridge.kpi.daemon import KpiComponent
from pbxbridge.kpi.live import LiveLine
from pbxbridge.kpi.service import KpiService
from pbxbridge.routing import daemon as routing_daemon
from pbxbridge.routing.daemon import RoutingComponent
from pbxbridge.routing.line_states import LineStates
from pbxbridge.web import daemon as web_daemon
from pbxbridge.web.daemon import DaemonWeb
from pbxbridge.web.live import LiveBoard
from pbxbridge.web.users import add_user
from tests.fixtures_ami import WAIT_S, wait_until
from tests.fixtures_web import PASSWORD, ApiClient, fast_password_hashing  # noqa: F401 - fixture

USER, SECRET = "pbxbridge", "s3cret"
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}
# 03-inbound-abandoned: 79161110003 waits in `sales` for some 15 s and hangs up.
ABANDONED = "03-inbound-abandoned.ami"
ABANDONED_CALLER = "1795723529.14"
# 01-inbound-answered: 79161110001 waits in `sales` some 2 s; 203 answers.
ANSWERED = "01-inbound-answered.ami"
ANSWERED_CALLER = "1795723449.4"


# -- helpers -------------------------------------------------------------------


class LoginGate:
    """Holds the simulator's logins back while closed, as a PBX still booting would."""

    def __init__(self, simulator: AmiSimulator) -> None:
        self._login = simulator.action_handlers["login"]
        self.open = asyncio.Event()
        self.open.set()
        # Set when a login arrived while closed: the client has noticed the drop by then.
        self.knocked = asyncio.Event()
        simulator.action_handlers["login"] = self._handle

    def close(self) -> None:
        self.open.clear()
        self.knocked.clear()

    async def _handle(self, server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        if not self.open.is_set():
            self.knocked.set()
            await self.open.wait()
        await self._login(server, session, action)


def event_index(trace: Trace, name: str) -> int:
    """Position of the first event of that name in a trace."""
    return next(i for i, e in enumerate(trace.events) if e.get("Event") == name)


def listed_callers(simulator: AmiSimulator) -> list[str]:
    """Uniqueids of the callers the PBX would list in a QueueStatus answer now."""
    return [f["Uniqueid"] for f in simulator.state.queue_status(None) if f["Event"] == "QueueEntry"]


def callers_waiting_gauge(service: KpiService) -> float:
    """The pbxbridge_callers_waiting gauge as /metrics shows it."""
    for family in text_string_to_metric_families(service.metrics_text()):
        for sample in family.samples:
            if sample.name == "pbxbridge_callers_waiting":
                return sample.value
    raise AssertionError("no pbxbridge_callers_waiting gauge")


def on_pbx(snapshot: dict[str, Any], key: str, pbx: str = "main") -> list[dict[str, Any]]:
    """A snapshot's rows (calls, waiting, managers) of one PBX."""
    return [row for row in snapshot[key] if row.get("pbx") == pbx]


@dataclass(slots=True)
class Site:
    """The daemon with routing, KPI and the web app attached, and a sign-in to its wallboard."""

    daemon: Daemon
    simulator: AmiSimulator
    gate: LoginGate
    routing: RoutingComponent
    kpi: KpiComponent
    kpi_service: KpiService
    web: DaemonWeb
    ops: ApiClient

    @property
    def listener(self) -> AmiListener:
        listener = self.daemon.links["main"].listener
        assert listener is not None
        return listener

    async def snapshot(self) -> dict[str, Any]:
        """GET /api/live/snapshot."""
        status, body = await self.ops.json("GET", "/api/live/snapshot")
        assert status == 200
        return dict(body)

    async def all_events_in(self, missed: int = 0) -> None:
        """Wait until the daemon has taken every event sent but ``missed`` (and each login's greeting)."""
        link = self.daemon.links["main"]
        await wait_until(lambda: link.events == self.simulator.events_sent - missed + self.listener.stats.logins)

    async def relisted(self, logins: int) -> None:
        """Wait until every part has taken the PBX's lists after ``logins`` logins."""
        link = self.daemon.links["main"]
        await wait_until(
            lambda: self.routing.feeds["main"].refreshes >= logins
            and self.kpi.queue_lists >= logins
            and link.catch_ups >= logins
        )


StartSite = Callable[[AmiSimulator], Awaitable[Site]]


@pytest.fixture
async def site_factory(
    tmp_path: Path, shared_dir: Path, _sqlite_template: Path, fast_password_hashing: None  # noqa: F811
) -> AsyncIterator[StartSite]:
    """Starts a daemon on a simulator; stops both at the end.

    The database is SQLite alone: the live views keep nothing in it (PostgreSQL runs the
    same code), and a skip of the PostgreSQL half would count as a failure.
    """
    simulators: list[AmiSimulator] = []
    daemons: list[Daemon] = []
    clients: list[ApiClient] = []

    async def start(simulator: AmiSimulator) -> Site:
        path = tmp_path / "pbxbridge.sqlite3"
        shutil.copyfile(_sqlite_template, path)
        gate = LoginGate(simulator)
        simulators.append(simulator)
        await simulator.start()
        config = Config(
            database=DatabaseConfig(url=f"sqlite:///{path}"),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=simulator.port, username=USER, secret=SECRET)],
            routing=RoutingConfig(agi_port=0),
            web=WebConfig(port=0, secret_key="test-secret-key-0123456789"),
        )
        daemon = Daemon(config, listener_options=FAST, retry_initial_s=0.05)
        # In the order pbxbridge.app attaches them: the wallboard reads routing's lines.
        routing = routing_daemon.attach(daemon.hub)
        kpi = kpi_daemon.attach(daemon.hub)
        web = web_daemon.attach(daemon.hub)
        daemons.append(daemon)
        await daemon.start()
        assert daemon.session_factory is not None and web.server is not None
        async with daemon.session_factory() as session, session.begin():
            await add_user(session, "sergey", PASSWORD, "ops")
        ops = ApiClient(web.server.url)
        clients.append(ops)
        assert (await ops.login("sergey")).status == 200
        return Site(daemon, simulator, gate, routing, kpi, kpi.service, web, ops)

    yield start
    for client in clients:
        await client.close()
    for daemon in daemons:
        await daemon.stop()
    for simulator in simulators:
        await simulator.stop()


async def next_push(ws: aiohttp.ClientWebSocketResponse, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first snapshot the wallboard's WebSocket pushes that ``accept`` takes."""
    async with asyncio.timeout(WAIT_S):
        while True:
            snapshot = await ws.receive_json()
            if accept(snapshot):
                return dict(snapshot)


# -- in the running daemon -----------------------------------------------------


async def test_a_drop_clears_the_waiting_caller_and_the_next_login_lists_it_back(
    site_factory: StartSite, shared_dir: Path
) -> None:
    trace = load_trace(shared_dir / ABANDONED)
    joined, gave_up = event_index(trace, "QueueCallerJoin"), event_index(trace, "QueueCallerAbandon")
    mid_wait = (joined + gave_up) // 2
    simulator = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, hold_when_idle=True)
    simulator.pause_after(mid_wait)
    site = await site_factory(simulator)
    await simulator.wait_paused()
    await site.all_events_in()
    await site.relisted(1)

    # Mid-wait: the caller waits, on the wallboard, the gauge and routing's lines alike.
    before = await site.snapshot()
    assert [c["uniqueid"] for c in on_pbx(before, "waiting")] == [ABANDONED_CALLER]
    assert site.kpi.line.callers_waiting == 1 and callers_waiting_gauge(site.kpi_service) == 1
    assert site.routing.feeds["main"].lines.waiting_in("sales") == 1
    ws = await site.ops.http.ws_connect("/api/live")
    try:
        first = await ws.receive_json()
        assert [c["uniqueid"] for c in on_pbx(first, "waiting")] == [ABANDONED_CALLER]

        # The AMI connection drops mid-wait; the PBX is not taking logins yet.
        site.gate.close()
        logins = site.listener.stats.logins
        simulator.drop_clients()
        await site.gate.knocked.wait()

        # Disconnected: nobody waits on the wallboard (pushed and asked), none is counted,
        # and routing does not count the caller against the queue either.
        pushed = await next_push(ws, lambda s: not on_pbx(s, "waiting"))
        assert on_pbx(pushed, "calls") == [] and on_pbx(pushed, "managers") == []
        during = await site.snapshot()
        assert on_pbx(during, "waiting") == [] and on_pbx(during, "calls") == []
        assert on_pbx(during, "managers") == [] and during["queues"] == []
        assert site.kpi.line.callers_waiting == 0 and callers_waiting_gauge(site.kpi_service) == 0
        assert site.routing.feeds["main"].lines.waiting_in("sales") == 0

        # Logged in again, the replay still paused: the caller comes back from the PBX's
        # QueueStatus answer alone, for no event has said anything since the drop.
        assert listed_callers(simulator) == [ABANDONED_CALLER]
        site.gate.open.set()
        await site.listener.wait_for_logins(logins + 1)
        await site.relisted(logins + 1)
        assert simulator.events_sent == mid_wait
        pushed = await next_push(ws, lambda s: bool(on_pbx(s, "waiting")))
        after = await site.snapshot()
        for view in (pushed, after):
            (caller,) = on_pbx(view, "waiting")
            assert caller["uniqueid"] == ABANDONED_CALLER and caller["queue"] == "sales"
            # The listed channel is matched to its call, still up after the channel list.
            assert caller["linkedid"] == ABANDONED_CALLER and caller["client_number"].lstrip("+") == "79161110003"
            assert [c["waiting"] for c in on_pbx(view, "calls")] == [True]
        assert after["queues"] == [{"queue": "sales", "waiting": 1}]
        assert site.kpi.line.callers_waiting == 1 and callers_waiting_gauge(site.kpi_service) == 1
        assert site.routing.feeds["main"].lines.waiting_in("sales") == 1
    finally:
        await ws.close()

    # The rest of the call as events: the caller hangs up and nobody waits any more.
    simulator.resume()
    await simulator.wait_replayed()
    await site.all_events_in()
    await site.daemon.flush()
    end = await site.snapshot()
    assert end["waiting"] == [] and end["calls"] == []
    assert site.kpi.line.callers_waiting == 0
    assert site.daemon.links["main"].reconciled_calls == 0


async def test_a_caller_answered_while_disconnected_is_not_shown_waiting_after_the_login(
    site_factory: StartSite, shared_dir: Path
) -> None:
    """The PBX plays on while nobody listens: 203 answers and the Leave event is lost.

    The tracker still remembers the caller in the queue; the wallboard and the gauge take
    the PBX's empty QueueStatus answer instead, and 203's line from its channel list.
    """
    trace = load_trace(shared_dir / ANSWERED)
    joined, talking = event_index(trace, "QueueCallerJoin"), event_index(trace, "AgentConnect")
    simulator = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, hold_when_idle=True)
    simulator.pause_after(joined + 1)
    site = await site_factory(simulator)
    await simulator.wait_paused()
    await site.all_events_in()
    await site.relisted(1)
    assert [c["uniqueid"] for c in on_pbx(await site.snapshot(), "waiting")] == [ANSWERED_CALLER]

    # Dropped; the PBX goes on without a listener until 203 is talking.
    site.gate.close()
    logins = site.listener.stats.logins
    simulator.drop_clients()
    await site.gate.knocked.wait()
    simulator.hold_when_idle = False
    simulator.pause_after(talking + 1)
    simulator.resume()
    await simulator.wait_paused()
    assert listed_callers(simulator) == []

    simulator.hold_when_idle = True
    site.gate.open.set()
    await site.listener.wait_for_logins(logins + 1)
    await site.relisted(logins + 1)
    after = await site.snapshot()
    assert on_pbx(after, "waiting") == []
    # The call is still up (the channel list kept it), and not waiting.
    (call,) = on_pbx(after, "calls")
    assert call["linkedid"] == ANSWERED_CALLER and call["waiting"] is False
    lines = {m["extension"]: m["state"] for m in on_pbx(after, "managers")}
    assert lines.get("203") == "in_call"
    assert site.kpi.line.callers_waiting == 0 and callers_waiting_gauge(site.kpi_service) == 0

    simulator.resume()
    await simulator.wait_replayed()
    await site.all_events_in(missed=talking - joined)
    await site.daemon.flush()
    assert (await site.snapshot())["calls"] == []


# -- the views alone -------------------------------------------------------------


def captured_until(shared_dir: Path, name: str, last: str) -> list[Frame]:
    """A captured stream's events up to and including the first ``last`` event."""
    trace = load_trace(shared_dir / name)
    return list(trace.events[: event_index(trace, last) + 1])


def queue_entry(queue: str, uniqueid: str, number: str, wait: int) -> Frame:
    """A QueueEntry item of a QueueStatus answer, with the fields Asterisk documents."""
    return {
        "Event": "QueueEntry", "Queue": queue, "Position": "1",
        "Channel": f"PJSIP/trunk-{uniqueid.replace('.', '')}", "Uniqueid": uniqueid,
        "CallerIDNum": number, "CallerIDName": "<unknown>",
        "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
        "Wait": str(wait), "Priority": "0",
    }


def test_the_kpi_line_forgets_one_pbx_and_takes_its_list(shared_dir: Path) -> None:
    line = LiveLine()
    for pbx in ("main", "branch"):
        for i, event in enumerate(captured_until(shared_dir, ABANDONED, "QueueCallerJoin")):
            line.feed(pbx, event, monotonic=float(i))
    assert line.callers_waiting == 2
    line.forget_pbx("main")
    assert line.waiting == {("branch", ABANDONED_CALLER)}
    # main's list names another caller; a Leave that came while it was on its way is applied over it.
    listed = [{"Event": "QueueParams", "Queue": "sales"}, queue_entry("sales", "1795723600.31", "79161119999", 4),
              queue_entry("sales", "1795723600.35", "79161118888", 2), {"Event": "QueueStatusComplete"}]
    since = [{"Event": "QueueCallerLeave", "Queue": "sales", "Uniqueid": "1795723600.35"}]
    line.rebuild_pbx("main", listed, since)
    assert line.waiting == {("branch", ABANDONED_CALLER), ("main", "1795723600.31")}


def test_line_states_forget_and_date_a_listed_caller_by_its_wait(shared_dir: Path) -> None:
    states = LineStates()
    states.feed_all(captured_until(shared_dir, ABANDONED, "QueueCallerJoin"))
    (caller,) = states.waiting_callers()
    assert (caller.uniqueid, caller.linkedid, caller.queue) == (ABANDONED_CALLER, ABANDONED_CALLER, "sales")
    told: list[str] = []
    states.on_rebuilt.append(lambda: told.append("rebuilt"))
    states.forget()
    assert states.waiting_callers() == [] and states.waiting_queues() == {} and states.lines() == {}
    states.refresh([queue_entry("sales", ABANDONED_CALLER, "79161110003", 7)], now=1795723540.0)
    (caller,) = states.waiting_callers()
    # QueueEntry has no Linkedid; its Wait dates the join on the PBX's clock.
    assert caller.linkedid is None and caller.joined_at == 1795723533.0 and caller.number == "79161110003"
    assert told == ["rebuilt", "rebuilt"]


def test_the_board_hides_a_dropped_pbx_until_it_logs_in_again(shared_dir: Path) -> None:
    trackers = {pbx: CallTracker(TrackerSettings(pbx=pbx)) for pbx in ("main", "branch")}
    board = LiveBoard(lambda: [c for t in trackers.values() for c in t.active_calls()])
    events = captured_until(shared_dir, ABANDONED, "QueueCallerJoin")
    for pbx, tracker in trackers.items():
        for event in events:
            tracker.feed(event, float(event.get("Timestamp", "0")))
            board.on_event(pbx, event)
    before = board.snapshot()
    assert sorted(c["pbx"] for c in before["waiting"]) == ["branch", "main"]

    board.forget_pbx("main")
    during = board.snapshot()
    assert [c["pbx"] for c in during["waiting"]] == ["branch"]
    assert {c["pbx"] for c in during["calls"]} == {"branch"}
    assert {m["pbx"] for m in during["managers"]} <= {"branch"}
    assert during["queues"] == [{"queue": "sales", "waiting": 1}]

    # The next login's greeting shows main again, with what it lists (nothing yet).
    board.on_event("main", load_trace(shared_dir / ABANDONED).fully_booted or {"Event": "FullyBooted"})
    after = board.snapshot()
    assert {c["pbx"] for c in after["calls"]} == {"branch", "main"}
    assert [c["pbx"] for c in after["waiting"]] == ["branch"]
