"""The wallboard's snapshot as a floor reads it: managers' names and client names beside the
extensions and numbers, numbers as people write them, and the department's totals (waiting now,
longest wait now, missed today and not called back), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from pbxbridge.ami.frames import event_time, read_trace
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.clients.tables import Client, ClientPhone
from pbxbridge.web.live import LiveBoard
from tests.fixtures_floor import NAMES, FloorSite, serve_floor
from tests.fixtures_web import fast_password_hashing  # noqa: F401 - fixture

MSK = ZoneInfo("Europe/Moscow")
# The captured lab day, at noon in Moscow: "today" for the missed callers.
LAB_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=MSK).timestamp()
WAITING_CALLER = "79161110003"  # 03-inbound-abandoned: rang 203 and 202, gave up after ~15 s


def board_with_a_caller_waiting(shared_dir: Path) -> LiveBoard:
    """A board fed scenario 03 up to the last moment its caller was still waiting in the queue."""
    tracker = CallTracker(TrackerSettings(pbx="main"))
    board = LiveBoard(tracker.active_calls)
    _banner, frames = read_trace(shared_dir / "03-inbound-abandoned.ami")
    now = 0.0
    events = [f for f in frames if "Event" in f]
    # Feed until the caller leaves the queue, then stop one event short of that.
    for index, frame in enumerate(events):
        now = event_time(frame, now)
        tracker.feed(frame, now)
        board.on_event("main", frame)
        if index + 1 < len(events) and events[index + 1].get("Event") in ("QueueCallerAbandon", "QueueCallerLeave"):
            break
    return board


@pytest.fixture
async def board_site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[FloorSite]:  # noqa: F811
    async with serve_floor(db_url, shared_dir, live=board_with_a_caller_waiting(shared_dir),
                           clock=lambda: LAB_NOON) as site:
        yield site


async def test_waiting_now_and_longest_wait_now(board_site: FloorSite) -> None:
    ops = await board_site.signed_in("sergey")
    status, snap = await ops.json("GET", "/api/live/snapshot")
    assert status == 200
    (caller,) = snap["waiting"]
    assert caller["client_number"] == WAITING_CALLER
    assert snap["totals"]["waiting"] == 1
    # Scripted: the caller waited 14-16 s before giving up; the board saw them at least 10 s in.
    assert 10 <= snap["totals"]["longest_wait_s"] <= 16
    assert snap["totals"]["longest_wait_s"] == caller["duration_s"]


async def test_names_beside_extensions_and_numbers_as_people_write_them(board_site: FloorSite) -> None:
    async with board_site.sessions() as db, db.begin():
        card = Client(name="ООО «Ромашка»", is_lead=False, created_at=datetime.now(MSK))
        card.phones = [ClientPhone(number="+" + WAITING_CALLER)]
        db.add(card)
    olga = await board_site.signed_in("olga")
    _, snap = await olga.json("GET", "/api/live/snapshot")
    (caller,) = snap["waiting"]
    assert caller["client_display"] == "+7 (916) 111-00-03"
    assert caller["client_name"] == "ООО «Ромашка»"
    lines = {m["extension"]: m["name"] for m in snap["managers"]}
    assert lines == {"202": NAMES["202"], "203": NAMES["203"]}
    assert snap["names"]["201"] == NAMES["201"]
    # A manager sees the names on the cards he may open, and only the number of anyone else's.
    _, theirs = await (await board_site.signed_in("ivan")).json("GET", "/api/live/snapshot")
    assert (theirs["waiting"][0]["client_display"], theirs["waiting"][0]["client_name"]) == ("+7 (916) 111-00-03", None)
    assert {m["name"] for m in theirs["managers"]} == {NAMES["202"], NAMES["203"]}


async def test_missed_today_counts_callers_nobody_called_back(board_site: FloorSite, shared_dir: Path) -> None:
    ops = await board_site.signed_in("sergey")
    _, before = await ops.json("GET", "/api/live/snapshot")
    assert before["totals"]["missed_not_called_back"] == {"day": "2026-11-26", "callers": 0, "calls": 0}
    # 03 and 05: callers who gave up, never called back; 11: missed, then called back by 202.
    await board_site.journal([shared_dir / n for n in
                              ("03-inbound-abandoned.ami", "05-inbound-busy-everyone.ami", "11-missed-then-callback.ami")])
    _, after = await ops.json("GET", "/api/live/snapshot")
    assert after["totals"]["missed_not_called_back"] == {"day": "2026-11-26", "callers": 2, "calls": 2}
    # Another day: nobody missed.
    board_site.context.clock = lambda: LAB_NOON + 86400
    _, tomorrow = await (await board_site.signed_in("sergey")).json("GET", "/api/live/snapshot")
    assert tomorrow["totals"]["missed_not_called_back"]["callers"] == 0


async def test_the_socket_pushes_the_same_dressed_snapshot(board_site: FloorSite) -> None:
    ops = await board_site.signed_in("sergey")
    async with ops.http.ws_connect("/api/live") as ws:
        first: dict[str, Any] = await ws.receive_json(timeout=10)
    assert first["totals"]["waiting"] == 1
    assert first["waiting"][0]["client_display"] == "+7 (916) 111-00-03"
    assert {m["name"] for m in first["managers"]} == {NAMES["202"], NAMES["203"]}
    assert first["totals"]["missed_not_called_back"]["callers"] == 0


async def test_a_call_that_left_the_journal_unnamed_still_shows(board_site: FloorSite) -> None:
    # A number with no card: shown formatted, no name, nothing made up.
    ops = await board_site.signed_in("sergey")
    _, snap = await ops.json("GET", "/api/live/snapshot")
    async with board_site.sessions() as db:
        assert (await db.scalar(select(ClientPhone).where(ClientPhone.number == "+" + WAITING_CALLER))) is None
    assert snap["waiting"][0]["client_name"] is None
