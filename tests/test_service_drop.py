"""The AMI connection cut again and again while every captured call plays: every call is still complete.

The PBX (the simulator, replaying every shared trace) cuts the manager
session at twenty points drawn with a seeded RNG, as an Asterisk ``manager
reload`` or a broken link does. The daemon keeps running: it reconnects, logs
in, asks for the channel list and must neither close a call that is still up
nor lose one. The replay holds while nobody is logged in (``hold_when_idle``)
so that no event falls into the gap; calls that end during a real gap are
covered by tests/test_daemon_live.py.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from tests.fixtures_ami import journal, wait_until
from tests.fixtures_service import SECRET, USER, open_call_rows, trace_linkedids
from tests.scenario_check import scenario_problems

DROPS = 20
SPEED = 100.0
SEED = 5038
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}


def test_dropped_ami_connection_at_random_points_loses_no_call(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    paths = sorted(shared_dir.glob("*.ami"))
    traces = [load_trace(p) for p in paths]
    total = sum(len(t.events) for t in traces)
    points = sorted(random.Random(SEED).sample(range(1, total), DROPS))

    async def go() -> tuple[int, int, list[int]]:
        sim = AmiSimulator(traces, speed=SPEED, username=USER, secret=SECRET, hold_when_idle=True)
        await sim.start()
        config = Config(
            database=DatabaseConfig(url=db_url),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username=USER, secret=SECRET)],
        )
        daemon = Daemon(config, listener_options=FAST, retry_initial_s=0.05)
        up_at_drop: list[int] = []
        try:
            await daemon.start()
            link = daemon.links["main"]
            listener = link.listener
            assert listener is not None
            sim.pause_after(points[0])
            for point, after in zip(points, [*points[1:], None], strict=True):
                await sim.wait_paused()
                assert sim.events_sent == point
                # Each login brings one greeting on top of the replayed events.
                await wait_until(lambda: link.events == sim.events_sent + listener.stats.logins)
                up_at_drop.append(len(link.tracker.active_linkedids()))
                logins = listener.stats.logins
                if after is not None:
                    # Set before the replay goes on, so that it cannot run past it.
                    sim.pause_after(after)
                sim.drop_clients()
                sim.resume()
                await listener.wait_for_logins(logins + 1)
            await sim.wait_replayed()
            await wait_until(lambda: link.events == sim.events_sent + listener.stats.logins)
            await wait_until(lambda: not link.tracker.active_linkedids())
            await daemon.flush()
            assert daemon.stats.calls_failed == 0
            return listener.stats.logins, link.reconciled_calls, up_at_drop
        finally:
            await daemon.stop()
            await sim.stop()

    logins, reconciled, up_at_drop = asyncio.run(go())
    assert logins == DROPS + 1
    # The cuts fell while calls were up, and the PBX still had them all afterwards.
    assert sum(1 for n in up_at_drop if n) >= DROPS // 2, up_at_drop
    assert reconciled == 0

    rows = journal(db_url)
    problems = [
        p
        for path in paths
        for p in scenario_problems(
            path.stem, expected, [r for r in rows if r["linkedid"] in trace_linkedids(path)], check_recording=True
        )
    ]
    assert problems == []
    assert len(rows) == sum(len(expected[p.stem]["calls"]) for p in paths)
    assert open_call_rows(db_url) == 0
