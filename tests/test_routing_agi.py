"""Overflow routing over a real FastAGI socket, spoken to exactly as Asterisk speaks AGI.

Line states come from the captured AMI streams, cut at moments whose state the
scenario fixes (who rings, who talks, how many callers wait).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.agi import FastAgiServer
from pbxbridge.routing.line_states import LineState, LineStates
from pbxbridge.routing.overflow import OverflowRouter
from pbxbridge.routing.rules import RoutingRules, get_rules, set_rules
from tests.fixtures_routing import (
    AgiOutcome,
    asterisk_agi_call,
    lines_until,
    trace_events,
)

MANAGERS = {
    "201": "Ivan Petrov",
    "202": "Olga Smirnova",
    "203": "Anna Kuznetsova",
    "204": "Sergey Volkov",
    "205": "Maria Orlova",
}
# Client cards: number -> responsible manager.
CLIENTS = {
    "+79161110001": "201",
    "+79161110002": "202",
    "+79161110003": "203",
}
SALES = {"name": "sales", "members": ["201", "202", "203"]}


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database with five managers and three clients' cards."""
    engine = make_engine(db_url)
    factory = session_factory(engine)
    async with factory() as session, session.begin():
        ids: dict[str, int] = {}
        for ext, name in MANAGERS.items():
            manager = Manager(extension=ext, name=name)
            session.add(manager)
            await session.flush()
            ids[ext] = manager.id
        for number, ext in CLIENTS.items():
            client = Client(
                name=f"client {number}", is_lead=False, created_at=datetime.now(UTC), responsible_manager_id=ids[ext]
            )
            session.add(client)
            await session.flush()
            session.add(ClientPhone(client_id=client.id, number=number))
    yield factory
    await engine.dispose()


async def ask(
    sessions: async_sessionmaker[AsyncSession],
    lines: LineStates,
    now: float,
    caller: str,
    args: list[str] | None = None,
) -> AgiOutcome:
    """Start a FastAGI server, let "Asterisk" run the route script once, stop it."""
    router = OverflowRouter(sessions, lines, region="RU", clock=lambda: now)
    server = FastAgiServer({"route": router.handle}, host="127.0.0.1", port=0)
    await server.start()
    try:
        return await asterisk_agi_call(server.port, "route", caller, args or ["1"])
    finally:
        await server.stop()


def idle_lines(shared_dir: Path) -> tuple[LineStates, float]:
    """Every line idle: pjsip-01 replayed to its end (the call is over)."""
    events = trace_events(shared_dir, "pjsip-01-inbound-ringall")
    lines = LineStates()
    lines.feed_all(events)
    return lines, float(events[-1]["Timestamp"])


async def test_own_manager_free_gets_the_call(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    await set_rules(sessions, {"groups": [SALES]})
    lines, now = idle_lines(shared_dir)
    assert lines.line("201").state is LineState.IDLE
    # The carrier sends the domestic form; the card holds +79161110001 (Ivan, 201).
    outcome = await ask(sessions, lines, now, "89161110001")
    assert outcome.variables == {
        "PBXB_ACTION": "dial",
        "PBXB_DEST": "PJSIP/201",
        "PBXB_EXT": "201",
        "PBXB_TIMEOUT": "20",
        "PBXB_TRIED": "201",
        "PBXB_REASON": "own_manager",
    }
    # Every command was one Asterisk accepted (a 510 would have ended the script early).
    assert all(c.startswith(("SET VARIABLE", "VERBOSE")) for c in outcome.commands)
    assert "own_manager" in outcome.verbose[0]


async def test_own_manager_busy_goes_to_least_busy_colleague(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # pjsip-01: 202 answered the ringall call; by the 4th QueueMemberStatus (201 back to
    # idle) 202 talks and the queue has stopped ringing 201 and 203.
    lines, now = lines_until(trace_events(shared_dir, "pjsip-01-inbound-ringall"), "QueueMemberStatus", nth=4)
    assert lines.in_state(LineState.IN_CALL) == {"202"}
    assert lines.line("201").state is LineState.IDLE and lines.line("203").state is LineState.IDLE
    # 201 has already handled a call today; 203 none: least_busy picks 203.
    async with sessions() as session, session.begin():
        started = datetime.fromtimestamp(now - 60, UTC)
        session.add(
            Call(
                pbx="main", linkedid="earlier-today", direction="inbound", status="answered",
                manager="201", started_at=started, answered_at=started, ended_at=started,
                wait_s=0.0, talk_s=30.0, rang=["201"], queues=["sales"], transferred_to=[],
                originated=False, closed_by="hangup",
            )
        )
    await set_rules(sessions, {"groups": [SALES], "policy": "least_busy"})
    outcome = await ask(sessions, lines, now, "+79161110002")
    assert outcome.variables["PBXB_ACTION"] == "dial"
    assert outcome.variables["PBXB_EXT"] == "203"
    assert outcome.variables["PBXB_DEST"] == "PJSIP/203"
    assert outcome.variables["PBXB_REASON"] == "colleague:busy"

    # round_robin instead: 201 first, then the next free one in order.
    await set_rules(sessions, {"policy": "round_robin"})
    first = await ask(sessions, lines, now, "+79161110002")
    second = await ask(sessions, lines, now, "+79161110002")
    assert [first.variables["PBXB_EXT"], second.variables["PBXB_EXT"]] == ["201", "203"]


async def test_own_manager_ringing_past_n_seconds_goes_to_colleague(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # pjsip-01 at the 2nd QueueMemberStatus (201 ringing): the ringall queue rings 201, 202, 203.
    lines, _ = lines_until(trace_events(shared_dir, "pjsip-01-inbound-ringall"), "QueueMemberStatus", nth=2)
    assert lines.in_state(LineState.RINGING) == {"201", "202", "203"}
    since = lines.line("201").ringing_since
    assert since is not None
    await set_rules(sessions, {"groups": [{"name": "sales", "members": ["201", "202", "203", "204"]}]})

    # 25 s into the ringing (N = 20): 201 is not picking up; 204 is the only free colleague.
    late = await ask(sessions, lines, since + 25, "+79161110001")
    assert late.variables["PBXB_EXT"] == "204"
    assert late.variables["PBXB_REASON"] == "colleague:ringing_too_long"

    # 5 s into the ringing, 201 may still pick up: the call goes to him.
    early = await ask(sessions, lines, since + 5, "+79161110001")
    assert early.variables["PBXB_EXT"] == "201"
    assert early.variables["PBXB_REASON"] == "own_manager"


async def test_second_agi_call_after_own_manager_rang_out(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    await set_rules(sessions, {"groups": [SALES]})
    lines, now = idle_lines(shared_dir)
    # The dialplan comes back after Dial(PJSIP/201,20): attempt 2, rang 20 s, NOANSWER.
    outcome = await ask(sessions, lines, now, "+79161110001", ["2", "20", "NOANSWER", "201"])
    # Nobody has calls in the journal today; 202 just finished the pjsip-01 call and
    # 203 has not talked at all, so least_busy's tie-break (longest idle) picks 203.
    assert outcome.variables["PBXB_ACTION"] == "dial"
    assert outcome.variables["PBXB_EXT"] == "203"
    assert outcome.variables["PBXB_TRIED"] == "201-203"
    assert outcome.variables["PBXB_REASON"] == "colleague:ringing_too_long"
    # Third attempt: 201 and 203 tried; 202 is left.
    third = await ask(sessions, lines, now, "+79161110001", ["3", "20", "NOANSWER", "201-203"])
    assert third.variables["PBXB_EXT"] == "202"
    # Everyone tried: the queue.
    last = await ask(sessions, lines, now, "+79161110001", ["4", "20", "NOANSWER", "201-202-203"])
    assert last.variables["PBXB_ACTION"] == "goto"
    assert last.variables["PBXB_DEST"] == "ext-queues,400,1"
    assert last.variables["PBXB_REASON"] == "queue:ringing_too_long"


async def test_more_than_m_callers_waiting_for_own_manager(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # 13-burst: 12 callers queued for 201-203; the 4th QueueMemberStatus is 203 back
    # from his first call while 201 and 202 still talk and nine callers wait in sales.
    lines, now = lines_until(trace_events(shared_dir, "13-burst"), "QueueMemberStatus", nth=4)
    assert lines.line("203").state is LineState.IDLE
    assert lines.in_state(LineState.IN_CALL) == {"201", "202"}
    waiting = lines.waiting_for("203")
    assert waiting == 9
    await set_rules(sessions, {"groups": [{"name": "sales", "members": ["203", "204"]}], "max_waiting": 2})
    outcome = await ask(sessions, lines, now, "+79161110003")
    assert outcome.variables["PBXB_EXT"] == "204"
    assert outcome.variables["PBXB_REASON"] == "colleague:too_many_waiting"
    # With M above the nine waiting, 203 gets his client.
    await set_rules(sessions, {"max_waiting": 9})
    outcome = await ask(sessions, lines, now, "+79161110003")
    assert outcome.variables["PBXB_EXT"] == "203"


async def test_nobody_free_goes_to_the_group_queue(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # 13-burst at the third AgentConnect: all three managers talk, callers still wait.
    lines, now = lines_until(trace_events(shared_dir, "13-burst"), "AgentConnect", nth=3)
    assert lines.in_state(LineState.IN_CALL) == {"201", "202", "203"}
    await set_rules(sessions, {"groups": [{**SALES, "queue_destination": "ext-queues,401,1"}]})
    outcome = await ask(sessions, lines, now, "+79161110001")
    assert outcome.variables["PBXB_ACTION"] == "goto"
    assert outcome.variables["PBXB_DEST"] == "ext-queues,401,1"
    assert outcome.variables["PBXB_EXT"] == ""
    assert outcome.variables["PBXB_REASON"] == "queue:busy"


async def test_out_of_hours(sessions: async_sessionmaker[AsyncSession], shared_dir: Path) -> None:
    lines, now = idle_lines(shared_dir)
    moscow = zoneinfo.ZoneInfo("Europe/Moscow")
    local = datetime.fromtimestamp(now, moscow)
    # The capture ran on a Thursday evening, after 18:00 Moscow time.
    assert local.weekday() == 3 and local.hour >= 18
    weekdays = [{"weekday": d, "opens": "09:00", "closes": "18:00"} for d in range(5)]
    await set_rules(
        sessions,
        {"groups": [SALES], "hours": weekdays, "after_hours_destination": "app-announcement-3,s,1"},
    )
    outcome = await ask(sessions, lines, now, "+79161110001")
    assert outcome.variables["PBXB_ACTION"] == "goto"
    assert outcome.variables["PBXB_DEST"] == "app-announcement-3,s,1"
    assert outcome.variables["PBXB_REASON"] == "after_hours"
    # The same Thursday at noon: open, and 201 is free.
    noon = local.replace(hour=12, minute=0).timestamp()
    outcome = await ask(sessions, lines, noon, "+79161110001")
    assert outcome.variables["PBXB_EXT"] == "201"


async def test_unknown_number_is_a_new_lead_for_the_default_group(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # pjsip-01 then pjsip-02: 204 has just finished a click-to-call; 205 has not talked at all.
    lines = LineStates()
    lines.feed_all(trace_events(shared_dir, "pjsip-01-inbound-ringall"))
    click = trace_events(shared_dir, "pjsip-02-click-to-call")
    lines.feed_all(click)
    now = float(click[-1]["Timestamp"])
    assert lines.line("204").idle_since is not None and lines.line("205").idle_since is None
    await set_rules(sessions, {"groups": [SALES, {"name": "seniors", "members": ["204", "205"]}],
                               "default_group": "seniors", "policy": "longest_idle"})
    outcome = await ask(sessions, lines, now, "+7 926 999-99-99")
    # No card for this number: a new lead, for the default group, whose longest idle is 205.
    assert outcome.variables["PBXB_ACTION"] == "dial"
    assert outcome.variables["PBXB_EXT"] == "205"
    assert outcome.variables["PBXB_REASON"] == "colleague:no_manager"
    # A withheld number is routed the same way.
    withheld = await ask(sessions, lines, now, "anonymous")
    assert withheld.variables["PBXB_REASON"] == "colleague:no_manager"
    # Without a default group, a new lead waits in the queue.
    await set_rules(sessions, {"default_group": None})
    outcome = await ask(sessions, lines, now, "+79269999999")
    assert outcome.variables["PBXB_ACTION"] == "goto"
    assert outcome.variables["PBXB_DEST"] == "ext-queues,400,1"
    assert outcome.variables["PBXB_REASON"] == "queue:no_manager"


async def test_rules_changed_while_running_apply_to_the_next_call(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    lines, now = idle_lines(shared_dir)
    await set_rules(sessions, {"groups": [SALES]})
    router = OverflowRouter(sessions, lines, clock=lambda: now)
    server = FastAgiServer({"route": router.handle}, port=0)
    await server.start()
    try:
        before = await asterisk_agi_call(server.port, "route", "+79161110001", ["1"])
        await set_rules(sessions, {"dial_template": "Local/{ext}@from-queue/n", "ring_timeout_s": 15})
        after = await asterisk_agi_call(server.port, "route", "+79161110001", ["1"])
    finally:
        await server.stop()
    assert before.variables["PBXB_DEST"] == "PJSIP/201"
    assert after.variables["PBXB_DEST"] == "Local/201@from-queue/n"
    assert after.variables["PBXB_TIMEOUT"] == "15"


async def test_rules_round_trip_and_validation(sessions: async_sessionmaker[AsyncSession]) -> None:
    from pbxbridge.routing.rules import RulesError

    defaults = await get_rules(sessions)
    assert defaults == RoutingRules()
    stored = await set_rules(
        sessions,
        {
            "groups": [SALES, {"name": "seniors", "members": ["204", "205"], "policy": "round_robin"}],
            "hours": [{"weekday": 0, "opens": "09:00", "closes": "18:00"}],
            "default_group": "sales",
        },
    )
    again = await get_rules(sessions)
    assert again == stored
    assert again.to_json()["groups"][1] == {
        "name": "seniors", "members": ["204", "205"], "policy": "round_robin", "queue_destination": None,
    }
    with pytest.raises(RulesError) as bad:
        await set_rules(sessions, {"policy": "random", "hours": [{"weekday": 7, "opens": "18:00", "closes": "09:00"}],
                                   "queue_destination": "400", "default_group": "nobody"})
    problems = " | ".join(bad.value.problems)
    for key in ("policy", "hours[0].weekday", "hours[0]: opens", "queue_destination", "default_group"):
        assert key in problems
    # A rejected change leaves the stored rules as they were.
    assert await get_rules(sessions) == stored


async def test_unreadable_database_sends_caller_to_queue(tmp_path: Path, shared_dir: Path) -> None:
    # A database without routing tables (never migrated): routing must not leave the caller hanging.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        lines, now = idle_lines(shared_dir)
        outcome = await ask(session_factory(engine), lines, now, "+79161110001")
    finally:
        await engine.dispose()
    assert outcome.variables["PBXB_ACTION"] == "goto"
    assert outcome.variables["PBXB_DEST"] == "ext-queues,400,1"


async def test_unknown_script_sets_nothing(sessions: async_sessionmaker[AsyncSession], shared_dir: Path) -> None:
    lines, _ = idle_lines(shared_dir)
    router = OverflowRouter(sessions, lines)
    server = FastAgiServer({"route": router.handle}, port=0)
    await server.start()
    try:
        outcome = await asterisk_agi_call(server.port, "nosuch", "+79161110001")
    finally:
        await server.stop()
    # No PBXB_ACTION: the dialplan's fallback sends the caller to the queue.
    assert outcome.variables == {}
    assert server.requests_failed == 1
