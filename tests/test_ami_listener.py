"""The AMI listener keeps a session to the PBX up and hands every event on exactly once."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener, ListenerState
from pbxbridge.ami.simulator import AmiSimulator, ClientSession
from pbxbridge.ami.traces import load_trace
from tests.fixtures_ami import trace_path, wait_until

USER, SECRET = "pbxbridge", "s3cret"
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}


class Collector:
    """Events as the listener handed them on, with their times."""

    def __init__(self) -> None:
        self.events: list[Frame] = []
        self.times: list[float] = []
        self.connects = 0

    def __call__(self, frame: Frame, received_at: float) -> None:
        self.events.append(frame)
        self.times.append(received_at)

    async def on_connected(self, listener: AmiListener) -> None:
        self.connects += 1

    def call_events(self) -> list[Frame]:
        """Everything but the per-session greeting."""
        return [e for e in self.events if e["Event"] != "FullyBooted"]


def _refusing_socket() -> socket.socket:
    """A port of our own where nothing listens yet: connections to it are refused.

    Held from the first connection attempt to the simulator listening on it, so
    no other process can take the port in between.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_every_event_with_its_asterisk_time(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "12-blind-transfer.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET)
    await sim.start()
    got = Collector()
    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, got, got.on_connected, **FAST)
    try:
        await listener.start()
        await sim.wait_replayed()
        await wait_until(lambda: len(got.call_events()) == len(trace.events))
        assert got.call_events() == list(trace.events)
        stamped = [(e["Timestamp"], t) for e, t in zip(got.events, got.times) if "Timestamp" in e]
        assert stamped and all(float(ts) == t for ts, t in stamped)
        assert got.connects == 1 and listener.state == ListenerState.LOGGED_IN
        assert listener.stats.malformed_frames == 0 and listener.decode_stats.malformed_lines == 0
    finally:
        await listener.stop()
        await sim.stop()
    assert listener.state == ListenerState.STOPPED


async def test_reconnects_after_a_drop_and_misses_nothing(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbxbridge.ami.listener")
    trace = load_trace(trace_path(shared_dir, "04-inbound-overflow.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, drop_after=len(trace.events) // 2)
    await sim.start()
    got = Collector()
    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, got, got.on_connected, **FAST)
    try:
        await listener.start()
        await sim.wait_replayed()
        await wait_until(lambda: len(got.call_events()) == len(trace.events))
        assert got.call_events() == list(trace.events)
        assert listener.stats.logins == 2 and listener.stats.disconnects == 1
        await wait_until(lambda: got.connects == 2)
    finally:
        await listener.stop()
        await sim.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("connecting to AMI" in m for m in messages) == 2
    assert sum("logged in to AMI" in m for m in messages) == 2
    assert any("AMI connection lost" in m for m in messages)
    assert any("reconnect in 0.05 s" in m for m in messages)


async def test_garbage_mid_stream_is_counted_and_later_events_still_count(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pbxbridge.ami.listener")
    trace = load_trace(trace_path(shared_dir, "02-inbound-second-agent.ami"))
    # Line noise with no frame end, a headerless frame, and binary junk.
    garbage = b"\x00\xff\xfe noise without a colon\r\n\r\nUnrelated: header\r\n\r\n\x16\x03\x01\x02\x00\r\n\r\n"
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET, inject_after={60: garbage, 150: garbage})
    await sim.start()
    got = Collector()
    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, got, got.on_connected, **FAST)
    try:
        await listener.start()
        await sim.wait_replayed()
        await wait_until(lambda: len(got.call_events()) == len(trace.events))
        assert got.call_events() == list(trace.events)
        assert listener.stats.malformed_frames == 2
        assert listener.decode_stats.malformed_lines == 4
        # The session survived: still one login.
        assert listener.stats.logins == 1 and listener.state == ListenerState.LOGGED_IN
    finally:
        await listener.stop()
        await sim.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("malformed AMI input" in m for m in warnings)
    assert any("neither Event nor Response" in m for m in warnings)


async def test_a_failing_consumer_does_not_break_the_session(shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "03-inbound-abandoned.ami"))
    sim = AmiSimulator([trace], speed=0, username=USER, secret=SECRET)
    await sim.start()
    got = Collector()

    def fragile(frame: Frame, received_at: float) -> None:
        if frame["Event"] == "Newchannel":
            raise ValueError("consumer bug")
        got(frame, received_at)

    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, fragile, **FAST)
    try:
        await listener.start()
        await sim.wait_replayed()
        newchannels = sum(e["Event"] == "Newchannel" for e in trace.events)
        await wait_until(lambda: len(got.call_events()) == len(trace.events) - newchannels)
        assert listener.stats.callback_errors == newchannels > 0
        assert listener.stats.logins == 1
    finally:
        await listener.stop()
        await sim.stop()


async def test_backs_off_while_the_pbx_is_down_then_connects(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbxbridge.ami.listener")
    down = _refusing_socket()
    port = down.getsockname()[1]
    got = Collector()
    listener = AmiListener("127.0.0.1", port, USER, SECRET, got, got.on_connected,
                           backoff_initial_s=0.02, backoff_cap_s=0.08)
    sim: AmiSimulator | None = None
    try:
        await listener.start()
        await wait_until(lambda: sum("reconnect in" in r.getMessage() for r in caplog.records) >= 5)
        delays = [r.getMessage().rsplit("reconnect in ", 1)[1] for r in caplog.records
                  if "reconnect in" in r.getMessage()]
        assert delays[:5] == ["0.02 s", "0.04 s", "0.08 s", "0.08 s", "0.08 s"]
        assert listener.stats.logins == 0

        # The PBX comes up where the listener has been knocking.
        sim = AmiSimulator([trace_path(shared_dir, "08-outbound-busy.ami")], speed=0,
                           username=USER, secret=SECRET, sock=down)
        await sim.start()
        assert sim.port == port
        await listener.wait_for_state(ListenerState.LOGGED_IN)
        await sim.wait_replayed()
        await wait_until(lambda: len(got.call_events()) == len(sim.traces[0].events))
    finally:
        await listener.stop()
        if sim is not None:
            await sim.stop()
        down.close()


async def test_wrong_secret_is_logged_and_retried(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pbxbridge.ami.listener")
    sim = AmiSimulator([trace_path(shared_dir, "08-outbound-busy.ami")], speed=0, username=USER, secret=SECRET)
    await sim.start()
    listener = AmiListener("127.0.0.1", sim.port, USER, "wrong", Collector(), **FAST)
    try:
        await listener.start()
        await wait_until(lambda: sum("login refused" in r.getMessage() for r in caplog.records) >= 2)
        assert listener.stats.logins == 0 and sim.events_sent == 0
    finally:
        await listener.stop()
        await sim.stop()


async def test_a_silent_pbx_is_detected_by_ping(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pbxbridge.ami.listener")
    sim = AmiSimulator([trace_path(shared_dir, "08-outbound-busy.ami")], speed=0, username=USER, secret=SECRET)

    async def hung(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        # A PBX whose manager thread is stuck: the socket stays open, nothing answers.
        return None

    sim.action_handlers["ping"] = hung
    await sim.start()
    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, Collector(),
                           ping_interval_s=0.05, ping_timeout_s=0.1, **FAST)
    try:
        await listener.start()
        await listener.wait_for_logins(2)
    finally:
        await listener.stop()
        await sim.stop()
    assert any("no answer to Ping" in r.getMessage() for r in caplog.records)


async def test_a_pbx_still_sending_is_not_taken_for_gone(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A busy hour: the Ping answer queues behind a burst of events and comes after the ping
    # timeout. The PBX is alive (it keeps sending): the session must stay up, nothing lost.
    caplog.set_level(logging.INFO, logger="pbxbridge.ami.listener")
    sim = AmiSimulator([trace_path(shared_dir, "01-inbound-answered.ami")], speed=0, loop=True, fresh_ids=True,
                       username=USER, secret=SECRET)
    pings: list[Frame] = []
    listener: AmiListener | None = None

    async def late(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        pings.append(action)
        if len(pings) == 1:
            # Answer the first Ping only once the listener has found it overdue twice
            # over while the looping replay kept its socket busy.
            assert listener is not None
            await wait_until(lambda: listener.stats.pings_overdue >= 2)
        session.respond(action, "Success", Ping="Pong")

    sim.action_handlers["ping"] = late
    await sim.start()
    collector = Collector()
    listener = AmiListener("127.0.0.1", sim.port, USER, SECRET, collector,
                           ping_interval_s=0.05, ping_timeout_s=0.1, **FAST)
    try:
        await listener.start()
        await listener.wait_for_logins(1)
        # A second Ping is sent only once the late answer to the first was taken.
        await wait_until(lambda: len(pings) >= 2)
        assert listener.stats.pings_overdue >= 2
        assert listener.stats.logins == 1 and listener.stats.disconnects == 0
        assert listener.state == ListenerState.LOGGED_IN
    finally:
        await listener.stop()
        await sim.stop()
    assert not any("no answer to Ping" in r.getMessage() for r in caplog.records)


async def test_send_action_while_down_raises(shared_dir: Path) -> None:
    down = _refusing_socket()
    listener = AmiListener("127.0.0.1", down.getsockname()[1], USER, SECRET, Collector(), **FAST)
    try:
        # Never started: no session at all.
        with pytest.raises(ConnectionError):
            await listener.send_action({"Action": "Ping"})
        # Started, with the PBX refusing connections: between two attempts.
        await listener.start()
        await listener.wait_for_state(ListenerState.DISCONNECTED)
        with pytest.raises(ConnectionError):
            await listener.send_action({"Action": "Ping"})
    finally:
        await listener.stop()
        down.close()
