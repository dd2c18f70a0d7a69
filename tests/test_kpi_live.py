"""KPIs in the running daemon: captured streams over TCP, the hook in every call's transaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.ami.frames import read_trace
from pbxbridge.kpi.live import LiveLine
from tests.fixtures_kpi import (
    all_events_in,
    day_figures,
    kpi_daemon,
    scripted,
    simulator,
    total,
)


def waiting_over(shared_dir: Path, scenario: str) -> tuple[list[int], LiveLine]:
    """Callers waiting after each event of a captured stream."""
    _banner, frames = read_trace(shared_dir / f"{scenario}.ami")
    line = LiveLine()
    counts: list[int] = []
    for i, frame in enumerate(frames):
        if "Event" in frame:
            line.feed("main", frame, monotonic=float(i))
            counts.append(line.callers_waiting)
    return counts, line


def test_callers_waiting_follow_the_queue(shared_dir: Path, expected: dict[str, Any]) -> None:
    # 04: one caller, in the sales queue and then in overflow until 205 answers: never two at once.
    counts, line = waiting_over(shared_dir, "04-inbound-overflow")
    assert max(counts) == 1 and counts[-1] == 0
    # 13: twelve callers join within two seconds; the first may be answered before the last
    # joins, so the queue holds all of them, or all but one, at its fullest, and nobody at the end.
    callers = len(expected["13-burst"]["calls"])
    counts, line = waiting_over(shared_dir, "13-burst")
    assert callers - 1 <= max(counts) <= callers and counts[-1] == 0
    # The line's clock is the last event's time, carried forward by what elapsed since.
    assert line.event_time is not None and line.seen_at is not None
    assert line.clock(line.seen_at + 60) == line.event_time + 60
    # Asterisk's login greeting (FullyBooted) carries no Timestamp: received later, it does not
    # move the clock of a PBX that stamps its events.
    _banner, frames = read_trace(shared_dir / "13-burst.ami")
    greeting = next(f for f in frames if f.get("Event") == "FullyBooted")
    assert "Timestamp" not in greeting
    line.feed("main", greeting, line.seen_at + 1, received_at=line.event_time + 3600)
    assert line.clock(line.seen_at) == line.event_time


def test_daemon_keeps_kpis_as_calls_end(db_url: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    traces = ["03-inbound-abandoned.ami", "11-missed-then-callback.ami"]

    async def go() -> tuple[dict[Any, dict[str, Any]], str, list[Any], list[Any]]:
        sim = simulator(shared_dir, *traces)
        await sim.start()
        daemon, service, component = kpi_daemon(db_url, shared_dir, sim.port)
        try:
            await daemon.start()
            await all_events_in(daemon, sim)
            await daemon.flush()
            now = time.monotonic()
            assert component.tick(now) == []
            text = service.metrics_text()
            # 03's caller hung up unanswered and nobody called back: its window is open, and the
            # alert falls due 600 s after its hang-up on the PBX's clock (900 s window, 300 s notice).
            (risk,) = service.watch.open_windows()
            clock = component.line.clock(now)
            assert clock is not None
            later = component.tick(now + (risk.lost_at - 300 - clock))
            return await day_figures(db_url, service), text, [risk], later
        finally:
            await daemon.stop()
            await sim.stop()

    day, text, (risk,), later = asyncio.run(go())
    assert later == [risk]
    d = day[None]
    # 03: abandoned; 11: abandoned, then called back by 202.
    callback = scripted(expected, "11-missed-then-callback", "callback_after_s")
    to_lead = total(scripted(expected, "11-missed-then-callback", "wait_s"), callback)
    assert (d["calls_in"], d["missed"], d["calls_out"], d["outbound_answered"]) == (2, 2, 1, 1)
    assert d["callbacks"] == 1 and callback[0] <= d["callback_s_median"] <= callback[1]
    assert (d["lost_leads"], d["callbacks_pending"]) == (0, 1)
    assert to_lead[0] <= d["speed_to_lead_s_median"] <= to_lead[1]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("pbxbridge_inbound_unanswered_total", (("status", "abandoned"),))] == 2
    assert samples[("pbxbridge_calls_answered_total", (("direction", "outbound"), ("manager", "202")))] == 1
    # The replay is over: no call up, nobody waiting.
    assert samples[("pbxbridge_calls_in_progress", ())] == 0
    assert samples[("pbxbridge_callers_waiting", ())] == 0
