"""Click-to-call against the AMI simulator over TCP, down to the call on the client's card."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener, ListenerState
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.calls.model import CallStatus, Direction, FailureReason, FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import ClickToCallConfig, Config
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.click_to_call import (
    AmiUnavailable,
    ClickToCall,
    ExtensionBusy,
    InvalidNumber,
    OriginateFailed,
    RequestStatus,
    UnknownExtension,
    extensions_from_db,
)
from pbxbridge.routing.line_states import LineState, LineStates
from pbxbridge.routing.sim_originate import OriginateSimulation
from tests.fixtures_ami import WAIT_S
from tests.fixtures_routing import lines_until, trace_events

USER, SECRET = "pbxbridge", "s3cret"


@dataclass
class Bench:
    """A simulator answering Originate, a listener feeding line states, click-to-call and a tracker."""

    simulator: AmiSimulator
    originate: OriginateSimulation
    listener: AmiListener
    lines: LineStates
    tracker: CallTracker
    clicks: ClickToCall
    finished: list[FinishedCall] = field(default_factory=list)
    got_call: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def bench(shared_dir: Path) -> AsyncIterator[Bench]:
    simulator = AmiSimulator([], speed=0, username=USER, secret=SECRET)
    originate = OriginateSimulation(
        traces_dir=shared_dir,
        busy_numbers={"79162220003"},
        unanswered_extensions={"203"},
        rejecting_extensions={"205"},
        unreachable_extensions={"298"},
    )
    originate.install(simulator)
    await simulator.start()
    lines = LineStates()
    tracker = CallTracker(TrackerSettings(pbx="main"))
    holder: dict[str, Bench] = {}

    def on_event(frame: Frame, received_at: float) -> None:
        b = holder["bench"]
        b.lines.feed(frame)
        b.clicks.feed(frame)
        done = b.tracker.feed(frame, received_at)
        if done:
            b.finished.extend(done)
            b.got_call.set()

    listener = AmiListener("127.0.0.1", simulator.port, USER, SECRET, on_event, name="main", backoff_initial_s=0.1)
    clicks = ClickToCall(listener.send_action, lines, ClickToCallConfig())
    holder["bench"] = Bench(simulator, originate, listener, lines, tracker, clicks)
    await listener.start()
    await asyncio.wait_for(listener.wait_for_state(ListenerState.LOGGED_IN), 10)
    yield holder["bench"]
    await listener.stop()
    await simulator.stop()


async def test_originate_sent_the_freepbx_way(bench: Bench) -> None:
    request = await bench.clicks.call("201", "8 (916) 222-00-01")
    [action] = bench.originate.received
    # Field by field, as the simulator read it off the socket.
    assert action["Action"] == "Originate"
    assert action["Channel"] == "Local/201@from-internal"
    assert action["Context"] == "from-internal"
    assert action["Exten"] == "79162220001"
    assert action["Priority"] == "1"
    assert action["CallerID"] == "201"
    assert action["Async"] == "true"
    assert action["Timeout"] == "30000"
    assert action["Variable"] == f"PBXB_REQUEST={request.request_id}"
    assert action["ActionID"] == request.action_id
    assert request.number == "+79162220001"
    assert request.status is RequestStatus.QUEUED
    await asyncio.wait_for(bench.originate.wait_played(), 10)


async def test_click_to_call_lands_on_the_clients_card(bench: Bench, db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            session.add(Manager(extension="201", name="Ivan Petrov"))
        clicks = ClickToCall(bench.listener.send_action, bench.lines, known_extensions=extensions_from_db(sessions))
        bench.clicks = clicks
        request = await clicks.call("201", "+7 916 222-00-01")
        resolved = await asyncio.wait_for(clicks.wait_resolved(request.request_id), 10)
        # The manager answered the handset: Asterisk reported the originated channel.
        assert resolved.status is RequestStatus.PLACED
        assert resolved.linkedid is not None
        await asyncio.wait_for(bench.got_call.wait(), 10)
        [call] = bench.finished
        assert call.linkedid == resolved.linkedid
        # pjsip-02 is a click-to-call the client answered (expected.json: answered, placed by the manager).
        assert call.direction is Direction.OUTBOUND
        assert call.status is CallStatus.ANSWERED
        assert call.manager == "201"
        assert call.originated

        row = await CallWriter(sessions, Config()).write(call)
        async with sessions() as session:
            stored = (await session.execute(select(Call).where(Call.linkedid == resolved.linkedid))).scalar_one()
            phone = (
                await session.execute(select(ClientPhone).where(ClientPhone.number == "+79162220001"))
            ).scalar_one()
            client = await session.get(Client, phone.client_id)
        assert stored.id == row.id
        assert stored.client_id == client.id
        assert stored.manager == "201"
        assert stored.direction == "outbound"
        assert stored.status == "answered"
        assert stored.originated is True
        assert stored.client_number == "+79162220001"
        # While it lasted, the line showed the manager on the phone; now idle again.
        assert bench.lines.line("201").state is LineState.IDLE
    finally:
        await engine.dispose()


async def test_client_busy_ends_as_a_busy_outbound_call(bench: Bench) -> None:
    request = await bench.clicks.call("202", "+79162220003")
    await asyncio.wait_for(bench.got_call.wait(), 10)
    [call] = bench.finished
    # pjsip-03: the client's line was busy (expected.json: status busy, placed by the manager).
    assert call.status is CallStatus.BUSY
    assert call.manager == "202"
    resolved = bench.clicks.request(request.request_id)
    assert resolved is not None and resolved.linkedid == call.linkedid


@pytest.mark.parametrize(("extension", "reason"), [("203", FailureReason.MANAGER_NO_ANSWER),
                                                   ("205", FailureReason.MANAGER_REJECTED)])
async def test_manager_not_picking_up_is_his_failed_call_to_that_client(
    bench: Bench, extension: str, reason: FailureReason
) -> None:
    # The simulator plays pjsip-03 cut where the manager's handset rings (sim_originate.manager_leg_fails).
    await bench.clicks.call(extension, "+79162220001")
    await asyncio.wait_for(bench.got_call.wait(), 10)
    [call] = bench.finished
    assert call.direction is Direction.OUTBOUND
    assert (call.manager, call.client_number) == (extension, "79162220001")
    assert (call.status, call.failure_reason) == (CallStatus.FAILED, reason)


async def test_originate_failing_at_once_is_an_error_for_who_clicked(bench: Bench) -> None:
    # The daemon's own click-to-call waits click_to_call.FAIL_FAST_S for Asterisk to say it failed; here the
    # wait ends when the simulator's answer comes, with a bound no slow machine reaches.
    bench.clicks = ClickToCall(bench.listener.send_action, bench.lines, ClickToCallConfig(), fail_fast_s=WAIT_S)
    with pytest.raises(OriginateFailed, match="298"):
        await bench.clicks.call("298", "+79162220001")
    await asyncio.wait_for(bench.originate.wait_played(), 10)
    # Asterisk made no channel: no call of any kind is journaled for it.
    assert bench.finished == [] and bench.tracker.active_count() == 0


async def test_second_click_while_the_manager_talks_is_refused(bench: Bench, shared_dir: Path) -> None:
    # pjsip-02 cut at the bridge: 204 is on the click-to-call with the client.
    lines, _ = lines_until(trace_events(shared_dir, "pjsip-02-click-to-call"), "BridgeEnter", nth=2)
    assert lines.line("204").state is LineState.IN_CALL
    clicks = ClickToCall(bench.listener.send_action, lines)
    with pytest.raises(ExtensionBusy):
        await clicks.call("204", "+79162220001")
    # pjsip-02 cut at the first Newstate: 204's handset is ringing for the Originate.
    lines, _ = lines_until(trace_events(shared_dir, "pjsip-02-click-to-call"), "Newstate", nth=1)
    with pytest.raises(ExtensionBusy):
        await ClickToCall(bench.listener.send_action, lines).call("204", "+79162220001")
    # Nothing reached the PBX.
    assert bench.originate.received == []


async def test_bad_number_and_unknown_extension(bench: Bench) -> None:
    async def managers() -> set[str]:
        return {"201", "202"}

    clicks = ClickToCall(bench.listener.send_action, bench.lines, known_extensions=managers)
    with pytest.raises(InvalidNumber):
        await clicks.call("201", "12")
    with pytest.raises(InvalidNumber):
        await clicks.call("201", "call me maybe")
    with pytest.raises(UnknownExtension):
        await clicks.call("299", "+79162220001")
    assert bench.originate.received == []


async def test_ami_down() -> None:
    listener = AmiListener("127.0.0.1", 1, USER, SECRET, lambda frame, ts: None)
    clicks = ClickToCall(listener.send_action, LineStates())
    with pytest.raises(AmiUnavailable):
        await clicks.call("201", "+79162220001")
