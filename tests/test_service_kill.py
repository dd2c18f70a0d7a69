"""SIGKILL the daemon again and again while every captured call plays: each call still lands once.

The PBX is the AMI simulator replaying every shared trace, with
``hold_when_idle``: while no daemon is logged in, the replay waits. That is
how a restart looks to the calls: Asterisk keeps running and keeps every
call up, and the daemon comes back after a restart that took no PBX time.
What the restart must not lose is what the daemon knew when it died: the
calls in progress (saved in ``open_calls``) and the finished calls (in the
journal). A real PBX would go on meanwhile; that case (calls ending while
nobody listens, closed from the channel list after the reconnect) is covered
in tests/test_daemon_live.py and tests/test_service_drop.py.

Each kill point is an event index drawn with a seeded RNG. The replay stops
there, the daemon reports (in its JSON log) that everything up to that event
is saved, and it gets SIGKILL: no stop(), no last flush, no logoff.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from tests.fixtures_ami import journal, wait_until
from tests.fixtures_service import (
    SECRET,
    USER,
    DaemonProcess,
    open_call_rows,
    trace_linkedids,
    write_config,
)
from tests.scenario_check import match_rows, scenario_problems

KILLS = 20
SPEED = 100.0
SEED = 20261126


def test_sigkill_at_random_points_loses_and_duplicates_no_call(
    db_url: str, tmp_path: Path, shared_dir: Path, expected: dict[str, Any]
) -> None:
    paths = sorted(shared_dir.glob("*.ami"))
    traces = [load_trace(p) for p in paths]
    total = sum(len(t.events) for t in traces)
    points = sorted(random.Random(SEED).sample(range(1, total), KILLS))
    log_path = tmp_path / "daemon.log"

    async def go() -> list[int]:
        sim = AmiSimulator(traces, speed=SPEED, username=USER, secret=SECRET, hold_when_idle=True)
        await sim.start()
        config = write_config(tmp_path / "pbxbridge.toml", db_url, sim.port, shared_dir / "recordings")
        restored: list[int] = []
        try:
            sent_before = 0
            for point in points:
                sim.pause_after(point)
                daemon = DaemonProcess(config, log_path)
                await sim.wait_paused()
                assert sim.events_sent == point
                # Every event since its login, plus the greeting each login brings.
                await daemon.wait_saved(events=point - sent_before + 1)
                daemon.kill()
                assert await daemon.exited() == -9
                restored.append(_restored(daemon.entries))
                # The PBX notices the dead session, then waits for the next login.
                await wait_until(lambda: not any(s.listening for s in sim.sessions))
                sent_before = point
                sim.resume()
            daemon = DaemonProcess(config, log_path)
            await sim.wait_replayed()
            await daemon.wait_saved(events=total - sent_before + 1, in_progress=0)
            daemon.terminate()
            assert await daemon.exited() == 0
            restored.append(_restored(daemon.entries))
        finally:
            await sim.stop()
        return restored

    restored = asyncio.run(go())
    # The kills did land mid-call: later starts took calls in progress back.
    assert sum(1 for n in restored if n) >= KILLS // 2, restored

    rows = journal(db_url)
    problems: list[str] = []
    placed = 0
    for path in paths:
        scenario = path.stem
        linkedids = trace_linkedids(path)
        mine = [r for r in rows if r["linkedid"] in linkedids]
        for scripted in expected[scenario]["calls"]:
            placed += 1
            found = match_rows(scripted, mine)
            if len(found) != 1:
                who = scripted.get("client") or scripted.get("from_ext")
                problems.append(f"{scenario}: {scripted['direction']} {who} present {len(found)} times")
    assert problems == []
    # Taken back whole: each call reads as if the daemon had never stopped.
    details = [p for path in paths for p in scenario_problems(
        path.stem, expected, [r for r in rows if r["linkedid"] in trace_linkedids(path)], check_recording=True)]
    assert details == []
    # Nothing written twice or made up: one row per scripted call, nothing left in progress.
    assert len(rows) == placed
    assert open_call_rows(db_url) == 0


def _restored(entries: list[dict[str, Any]]) -> int:
    return sum(int(e.get("restored_calls", 0)) for e in entries)
