"""`pbxbridge replay` runs the daemon's own pipeline: what a replayed call gets is what a live one gets.

The journal, the KPI figures (no `kpi rebuild` needed), transcription jobs;
calls a tracker holds back are written when their capture ends (and, live,
when the PBX falls silent); and none of the daemon's servers is started for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxbridge.ami.frames import Frame, encode_frame, read_trace
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon
from pbxbridge.config import Config, DatabaseConfig, PbxConfig
from tests.fixtures_ami import journal, wait_until

REPO = Path(__file__).resolve().parent.parent
# pbxbridge's default kpi.timezone: the business day of a call.
ZONE = ZoneInfo("Europe/Moscow")


def pbxbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, with none of this machine's PBXBRIDGE_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PBXBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge", *args],
        check=False, capture_output=True, text=True, env={**clean, **(env or {})}, cwd=REPO, timeout=240,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def scripted_days(expected: dict[str, Any]) -> dict[date, Counter[tuple[str, str]]]:
    """Per business day, the scripted calls counted by (direction, status)."""
    days: dict[date, Counter[tuple[str, str]]] = {}
    for scenario in expected.values():
        day = datetime.fromtimestamp(scenario["started"], ZONE).date()
        counts = days.setdefault(day, Counter())
        for call in scenario["calls"]:
            counts[(call["direction"], call["status"])] += 1
    return days


def kpi_day(url: str, day: date) -> str:
    return ok(pbxbridge("kpi", "--from", day.isoformat(), "--to", day.isoformat(), "--json", "--db", url))


def test_replayed_calls_reach_the_kpis_and_the_transcription_queue(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    traces = sorted(str(p) for p in shared_dir.glob("*.ami"))
    recordings = ["--recordings", str(shared_dir / "recordings")]
    total = sum(len(s["calls"]) for s in expected.values())
    summary = ok(pbxbridge("replay", *traces, "--db", db_url, *recordings))
    assert f"{total} call(s), {total} new, 0 already in the journal" in summary

    days = scripted_days(expected)
    assert len(days) == 2
    # Straight after the replay, as a sales head would ask for them: no rebuild in between.
    replayed = {day: kpi_day(db_url, day) for day in days}
    for day, scripted in days.items():
        rows = [json.loads(line) for line in replayed[day].splitlines()]
        assert rows, f"no figures for {day}"
        department = rows[-1]
        assert department["manager"] is None and department["date"] == day.isoformat()
        assert len(rows) > 1, "no manager's row"
        inbound = sum(n for (direction, _status), n in scripted.items() if direction == "inbound")
        outbound = sum(n for (direction, _status), n in scripted.items() if direction == "outbound")
        internal = sum(n for (direction, _status), n in scripted.items() if direction == "internal")
        assert (department["calls_in"], department["answered"]) == (inbound, scripted[("inbound", "answered")])
        assert (department["calls_out"], department["outbound_answered"]) == (
            outbound, scripted[("outbound", "answered")])
        assert department["calls_internal"] == internal

    # What the journal alone gives, recomputed from scratch: the same figures, to the last field.
    ok(pbxbridge("kpi", "rebuild", "--db", db_url))
    for day in days:
        assert kpi_day(db_url, day) == replayed[day]

    # Every recording with sound was queued for the transcription workers by the replay itself.
    with_sound = sum(1 for s in expected.values() for c in s["calls"] if c.get("recording"))
    backfill = pbxbridge("transcribe", "--all", "--enqueue-only", "--db", db_url, *recordings)
    ok(backfill)
    said = re.search(r"(\d+) recording\(s\) queued, (\d+) waiting", backfill.stderr)
    assert said is not None, backfill.stderr
    assert int(said[1]) == 0 and int(said[2]) >= with_sound


def failed_click_to_call(shared_dir: Path, out: Path) -> str:
    """pjsip-03 edited into a click-to-call the manager's handset (205) did not answer, cut before Asterisk's
    OriginateResponse: the capture ends while the tracker waits for the number that response would name.

    Kept: the login, the handset's channel, Asterisk's dial of it and its ringing. Its answer and
    everything after are left out; a DialEnd NOANSWER and the handset's Hangup (shaped like the
    captured ones) end it. Returns the call's linkedid.
    """
    banner, frames = read_trace(shared_dir / "pjsip-03-click-to-call-busy.ami")
    handset = "PJSIP/205-00000006"
    ringing = next(i for i, f in enumerate(frames)
                   if f.get("Event") == "Newstate" and f.get("Channel") == handset and f.get("ChannelStateDesc") == "Ringing")
    dial_end = next(f for f in frames if f.get("Event") == "DialEnd" and f.get("DestChannel") == handset)
    hangup = next(f for f in frames if f.get("Event") == "Hangup" and f.get("Channel") == handset)
    assert not any(f.get("Event") == "OriginateResponse" for f in frames[: ringing + 1])
    stamp = float(frames[ringing]["Timestamp"])
    edited: list[Frame] = [
        *frames[: ringing + 1],
        {**dial_end, "DialStatus": "NOANSWER", "Timestamp": f"{stamp + 20:.6f}"},
        {**hangup, "ChannelState": "5", "ChannelStateDesc": "Ringing", "Cause": "19",
         "Cause-txt": "No user responding", "Timestamp": f"{stamp + 20.1:.6f}"},
    ]
    out.write_bytes(f"{banner}\r\n".encode() + b"".join(encode_frame(f) for f in edited))
    return hangup["Linkedid"]


def test_a_call_held_when_its_capture_ends_is_written(db_url: str, shared_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "click-to-call-no-answer.ami"
    linkedid = failed_click_to_call(shared_dir, trace)
    summary = ok(pbxbridge("replay", str(trace), "--db", db_url))
    assert "1 call(s), 1 new" in summary
    (row,) = journal(db_url)
    assert row["linkedid"] == linkedid and row["manager"] == "205"


@pytest.fixture
def taken_ports() -> Iterator[tuple[int, int]]:
    """Two ports something else listens on: the daemon beside the replay, say."""
    sockets = [socket.socket(), socket.socket()]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        yield sockets[0].getsockname()[1], sockets[1].getsockname()[1]
    finally:
        for sock in sockets:
            sock.close()


def test_replay_starts_no_server(tmp_path: Path, shared_dir: Path, taken_ports: tuple[int, int]) -> None:
    web, agi = taken_ports
    url = f"sqlite:///{tmp_path / 'pbxbridge.sqlite3'}"
    result = pbxbridge(
        "replay", str(shared_dir / "01-inbound-answered.ami"), "--db", url,
        env={"PBXBRIDGE_WEB__HOST": "127.0.0.1", "PBXBRIDGE_WEB__PORT": str(web),
             "PBXBRIDGE_ROUTING__AGI_HOST": "127.0.0.1", "PBXBRIDGE_ROUTING__AGI_PORT": str(agi)},
    )
    # The web app would have failed to start on its port, FastAGI would have said it cannot listen.
    assert "1 call(s), 1 new" in ok(result)
    assert "FastAGI" not in result.stderr and "address already in use" not in result.stderr.lower()


def test_the_daemon_gives_out_a_held_call_when_the_pbx_falls_silent(shared_dir: Path, tmp_path: Path) -> None:
    """The same held click-to-call over TCP: no event comes after its Hangup to move the PBX's clock.

    The daemon runs that clock on with its own from the last event, and the call is
    written once the tracker's wait for the OriginateResponse is over (some seconds).
    """
    trace = tmp_path / "click-to-call-no-answer.ami"
    linkedid = failed_click_to_call(shared_dir, trace)
    url = f"sqlite:///{tmp_path / 'pbxbridge.sqlite3'}"

    async def go() -> list[str]:
        sim = AmiSimulator([trace], speed=0, username="pbxbridge", secret="s3cret")
        await sim.start()
        config = Config(database=DatabaseConfig(url=url), pbx=[
            PbxConfig(name="main", host="127.0.0.1", port=sim.port, username="pbxbridge", secret="s3cret")])
        daemon = Daemon(config)
        written: list[str] = []
        daemon.call_subscribers.append(lambda call, _row: written.append(call.linkedid))
        try:
            await daemon.start()
            await sim.wait_replayed()
            link = daemon.links["main"]
            await wait_until(lambda: link.events == sim.events_sent + 1)
            # Every event is in, the Hangup among them, and the call is not out yet: it is held.
            assert written == [] and daemon.stats.calls_finished == 0
            await wait_until(lambda: daemon.stats.calls_finished == 1)
            await daemon.flush()
        finally:
            await daemon.stop()
            await sim.stop()
        return written

    assert asyncio.run(go()) == [linkedid]
    assert [row["linkedid"] for row in journal(url)] == [linkedid]


def test_a_capture_cut_mid_call_is_journaled_once_with_a_warning(
    db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    """01-inbound-answered cut before anyone hung up, with a Hangup repeated and one for a
    channel the capture never showed: one call, as far as it went, and warnings naming them."""
    banner, frames = read_trace(shared_dir / "01-inbound-answered.ami")
    events = [f for f in frames if "Event" in f]
    cut = next(i for i, f in enumerate(events) if f["Event"] == "HangupRequest")
    agent_hangup = next(f for f in events if f["Event"] == "Hangup")
    stranger = {**agent_hangup, "Channel": "PJSIP/999-000000ff", "Uniqueid": "1.999", "Linkedid": "1.999"}
    edited = [*events[:cut], stranger]
    trace = tmp_path / "cut.ami"
    trace.write_bytes(f"{banner}\r\n".encode() + b"".join(encode_frame(f) for f in edited))
    result = pbxbridge("replay", str(trace), str(trace), "--db", db_url)
    assert result.returncode == 0, result.stderr
    (row,) = journal(db_url)
    linkedid = next(f for f in events if f["Event"] == "Newchannel")["Linkedid"]
    assert (row["linkedid"], row["status"], row["manager"]) == (linkedid, "answered", "203")
    assert linkedid in result.stderr and "ended while the call was in progress" in result.stderr
    assert "1.999" in result.stderr and "never seen" in result.stderr
