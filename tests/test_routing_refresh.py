"""Line states rebuilt from what the PBX lists after a login, for a client that missed the events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.routing.line_states import LineState, LineStates
from pbxbridge.routing.live import LineFeed
from tests.fixtures_ami import WAIT_S, wait_until
from tests.fixtures_routing import trace_events

USER, SECRET = "pbxbridge", "s3cret"


async def test_late_login_learns_the_call_in_progress_from_the_lists(shared_dir: Path) -> None:
    # pjsip-01: 202 answers the ringall call and talks ~20 s. The PBX plays it with nobody
    # listening; pbxbridge logs in only once 202 is talking, so every event before is missed.
    events = trace_events(shared_dir, "pjsip-01-inbound-ringall")
    answered_at = next(i for i, e in enumerate(events) if e.get("Event") == "AgentConnect")
    # The first moment after the answer when the other handsets have stopped ringing.
    replayed = LineStates()
    replayed.feed_all(events[: answered_at + 1])
    talking = answered_at
    while replayed.in_state(LineState.RINGING):
        talking += 1
        replayed.feed(events[talking])
    assert replayed.in_state(LineState.IN_CALL) == {"202"}
    assert any(e.get("Event") == "Hangup" and "PJSIP/202" in e.get("Channel", "") for e in events[talking + 1 :])

    # The PBX's time stands still there until the test lets it go on, so the call
    # is still up at the login however long connecting takes.
    simulator = AmiSimulator(
        [shared_dir / "pjsip-01-inbound-ringall.ami"], speed=0, username=USER, secret=SECRET,
        hold_when_idle=False,
    )
    simulator.pause_after(talking + 1)
    await simulator.start()
    feed = LineFeed()
    listener: AmiListener | None = None

    def on_event(frame: Frame, _received_at: float) -> None:
        feed.feed(frame, listener.send_action if listener is not None else None)

    listener = AmiListener("127.0.0.1", simulator.port, USER, SECRET, on_event, backoff_initial_s=0.05)
    try:
        await asyncio.wait_for(simulator.wait_paused(), WAIT_S)
        assert simulator.events_sent == talking + 1
        await listener.start()
        await wait_until(lambda: feed.refreshes >= 1)
        # Only the lists (channels up, queue members, hints) can have said so.
        assert feed.lines.line("202").state is LineState.IN_CALL
        assert feed.lines.line("201").state is LineState.IDLE
        assert feed.lines.line("203").state is LineState.IDLE
        assert "sales" in feed.lines.line("202").queues
        assert feed.lines.waiting_in("sales") == 0
        # And the rest of the call comes as events: 202 hangs up and is free again.
        simulator.resume()
        await wait_until(lambda: feed.lines.line("202").state is LineState.IDLE)
    finally:
        await listener.stop()
        await feed.stop()
        await simulator.stop()
