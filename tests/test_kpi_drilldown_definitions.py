"""One definition per figure: a client who called three times and was never called back is one
lost lead (not three), for the department and for each manager whose handset rang; the calls the
figure lists come from the very predicates the tallies count with (no database)."""

from __future__ import annotations

from pbxbridge.kpi.definitions import (
    DEPARTMENT,
    CallFact,
    KpiSettings,
    counts_lost,
    counts_missed,
    link_callbacks,
    period_figures,
)

SETTINGS = KpiSettings()
T0 = 1_795_000_000.0


def _missed(call_id: int, at: float, client: str | None, rang: tuple[str, ...], status: str = "abandoned") -> CallFact:
    return CallFact(
        call_id=call_id, direction="inbound", status=status, started_at=at, ended_at=at + 30, answered_at=None,
        wait_s=30, talk_s=0, client_key=client, rang=rang,
    )


def _answered(call_id: int, at: float, manager: str, rang: tuple[str, ...]) -> CallFact:
    return CallFact(
        call_id=call_id, direction="inbound", status="answered", started_at=at, ended_at=at + 90, answered_at=at + 10,
        wait_s=10, talk_s=80, client_key="n:+79160000009", manager=manager, rang=rang,
    )


def _day() -> list[CallFact]:
    facts = [
        # Petrov tries three times in an hour; nobody calls him back.
        _missed(1, T0, "c:7", ("203", "202")),
        _missed(2, T0 + 600, "c:7", ("203",), status="missed"),
        _missed(3, T0 + 1200, "c:7", ("203",)),
        # A hidden number: nobody to call back, still a caller the department lost.
        _missed(4, T0 + 1800, None, ("202",)),
        # 203 did not pick up, 202 did: a miss of 203's, not the department's.
        _answered(5, T0 + 2400, "202", ("203", "202")),
    ]
    link_callbacks(facts, SETTINGS, clock=T0 + 10_000)
    return facts


def test_a_client_lost_three_times_is_one_lost_lead() -> None:
    day = period_figures(_day(), [], SETTINGS)
    assert day[DEPARTMENT]["lost_leads"] == 2  # Petrov and the hidden number
    assert day["203"]["lost_leads"] == 1 and day["202"]["lost_leads"] == 2


def test_missed_counts_what_its_predicate_accepts() -> None:
    facts = _day()
    day = period_figures(facts, [], SETTINGS)
    for who in (DEPARTMENT, "203", "202"):
        listed = [f.call_id for f in facts if counts_missed(f, who, SETTINGS)]
        assert day[who]["missed"] == len(listed), who
    # The department missed the four unanswered callers, whatever the PBX called their status;
    # 203 also missed the call 202 answered.
    assert [f.call_id for f in facts if counts_missed(f, DEPARTMENT, SETTINGS)] == [1, 2, 3, 4]
    assert [f.call_id for f in facts if counts_missed(f, "203", SETTINGS)] == [1, 2, 3, 5]
    assert [f.call_id for f in facts if counts_lost(f, "202", SETTINGS)] == [1, 4]
