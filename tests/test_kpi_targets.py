"""KPI targets as a head of sales sets and reads them, and every figure beside the previous period of
the same length, on SQLite and PostgreSQL over the captured lab day (26.11.2026)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.kpi.tables import KpiTargetRow
from pbxbridge.kpi.targets import BETTER, LOWER, on_target
from pbxbridge.web.tables import AuditEntry
from tests.fixtures_floor import FloorSite, serve_floor
from tests.fixtures_web import fast_password_hashing, local_lab_traces  # noqa: F401 - fixture

LAB_DAY = "2026-11-26"


@pytest.fixture
async def site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[FloorSite]:  # noqa: F811
    async with serve_floor(db_url, shared_dir) as floor:
        await floor.journal(local_lab_traces(shared_dir))
        yield floor


def figure(answer: dict[str, Any], kpi: str, manager: str | None = None) -> dict[str, Any]:
    (row,) = [r for r in answer["comparison"] if r["manager"] == manager]
    result: dict[str, Any] = row["figures"][kpi]
    return result


async def test_each_figure_beside_the_previous_period_of_the_same_length(site: FloorSite) -> None:
    olga = await site.signed_in("olga")
    _, lab_day = await olga.json("GET", "/api/kpi", params={"from": LAB_DAY, "to": LAB_DAY})
    department = next(r for r in lab_day["rows"] if r["manager"] is None)
    assert department["offered"] > 0 and department["calls_out"] > 0
    # The day before had no calls: nothing to compare with.
    assert lab_day["previous"] == {"from": "2026-11-25", "to": "2026-11-25"}
    assert figure(lab_day, "offered")["value"] == department["offered"]
    assert figure(lab_day, "offered")["previous"] is None

    # The next day: the lab day is its previous period.
    _, next_day = await olga.json("GET", "/api/kpi", params={"from": "2026-11-27", "to": "2026-11-27"})
    assert next_day["previous"] == {"from": LAB_DAY, "to": LAB_DAY}
    for kpi in ("offered", "answered", "abandoned", "calls_out", "lost_leads", "talk_s", "service_level"):
        assert figure(next_day, kpi)["previous"] == department[kpi], kpi
    # A manager's own figures are compared with his own.
    petr = next(r for r in lab_day["rows"] if r["manager"] == "202")
    _, petr_next = await olga.json("GET", "/api/kpi", params={"from": "2026-11-27", "to": "2026-11-27", "manager": "202"})
    assert figure(petr_next, "answered", "202")["previous"] == petr["answered"]

    # Three days end on the 28th: the previous three are the 23rd to the 25th, then 26-28 hold the lab day.
    _, three = await olga.json("GET", "/api/kpi", params={"from": "2026-11-26", "to": "2026-11-28"})
    assert (three["days"], three["previous"]) == (3, {"from": "2026-11-23", "to": "2026-11-25"})
    assert figure(three, "offered")["value"] == department["offered"]


async def test_a_head_sets_targets_that_know_which_way_is_better(site: FloorSite) -> None:
    olga = await site.signed_in("olga")
    _, day = await olga.json("GET", "/api/kpi", params={"from": LAB_DAY, "to": LAB_DAY})
    department = next(r for r in day["rows"] if r["manager"] is None)
    lost, answered = department["lost_leads"], department["answered"]
    assert lost >= 1 and answered >= 2
    placed = {r["manager"]: r["calls_out"] or 0 for r in day["rows"] if r["manager"] is not None}
    most = max(placed.values())
    assert min(placed.values()) < most

    # No lost leads at all (lower is better); at least `answered` answered calls a day (higher is better);
    # each manager as many calls out a day as the busiest one placed.
    for body in ({"kpi": "lost_leads", "scope": "department", "value": 0},
                 {"kpi": "answered", "scope": "department", "value": answered},
                 {"kpi": "calls_out", "scope": "manager", "value": most}):
        status, saved = await olga.json("PUT", "/api/kpi/targets", json=body)
        assert status == 200, saved
        assert saved["item"]["value"] == body["value"] and saved["item"]["better"] == BETTER[body["kpi"]]
    _, day = await olga.json("GET", "/api/kpi", params={"from": LAB_DAY, "to": LAB_DAY})
    assert figure(day, "lost_leads") == {"value": lost, "previous": None, "target": 0, "met": False}
    assert figure(day, "answered")["met"] is True
    # Over two days a count's daily target doubles: the same calls now fall short.
    _, two = await olga.json("GET", "/api/kpi", params={"from": LAB_DAY, "to": "2026-11-27"})
    assert (figure(two, "answered")["target"], figure(two, "answered")["met"]) == (2 * answered, False)
    # Every manager is judged by the managers' target: the busiest meet it, the others fall short.
    managers = {r["manager"]: r["figures"]["calls_out"] for r in day["comparison"] if r["manager"] is not None}
    assert {ext: judged["met"] for ext, judged in managers.items()} == {
        ext: n >= most for ext, n in placed.items()}

    # The list of targets, and the figures a target can be set for, with their direction.
    _, listed = await olga.json("GET", "/api/kpi/targets")
    assert {(t["kpi"], t["scope"]) for t in listed["items"]} == {
        ("lost_leads", "department"), ("answered", "department"), ("calls_out", "manager")}
    assert {f["kpi"]: f["better"] for f in listed["figures"]}["asa_s"] == LOWER
    # Setting it again replaces it; null removes it.
    await olga.json("PUT", "/api/kpi/targets", json={"kpi": "lost_leads", "scope": "department", "value": 3})
    await olga.json("PUT", "/api/kpi/targets", json={"kpi": "answered", "scope": "department", "value": None})
    _, listed = await olga.json("GET", "/api/kpi/targets")
    assert {(t["kpi"], t["value"]) for t in listed["items"] if t["scope"] == "department"} == {("lost_leads", 3)}
    async with site.sessions() as db:
        actions = (await db.scalars(select(AuditEntry.target).where(AuditEntry.action == "set_kpi_target"))).all()
    assert len(actions) == 5 and "kpi:lost_leads" in actions


@pytest.mark.parametrize(("body", "field"), [
    ({"kpi": "no_such_figure", "value": 1}, "kpi"),
    ({"kpi": "calls_internal", "value": 1}, "kpi"),
    ({"kpi": "answered", "scope": "team", "value": 1}, "scope"),
    ({"kpi": "offered", "scope": "manager", "value": 1}, "scope"),
    ({"kpi": "answered", "value": "many"}, "value"),
    ({"kpi": "answered", "value": True}, "value"),
    ({"kpi": "answered", "value": -1}, "value"),
    ({"kpi": "service_level", "value": 80}, "value"),
])
async def test_a_target_that_cannot_be_kept_is_refused_and_nothing_is_stored(
    site: FloorSite, body: dict[str, Any], field: str
) -> None:
    olga = await site.signed_in("olga")
    await olga.json("PUT", "/api/kpi/targets", json={"kpi": "answered", "scope": "department", "value": 5})
    status, answer = await olga.json("PUT", "/api/kpi/targets", json=body)
    assert status == 400
    assert answer["error"].startswith(field + ":"), answer
    async with site.sessions() as db:
        kept = (await db.execute(select(KpiTargetRow.kpi, KpiTargetRow.value))).all()
    assert [tuple(r) for r in kept] == [("answered", 5.0)]


async def test_only_the_head_of_sales_sets_targets(site: FloorSite) -> None:
    ivan = await site.signed_in("ivan")
    status, _ = await ivan.json("PUT", "/api/kpi/targets", json={"kpi": "calls_out", "scope": "manager", "value": 0})
    assert status == 403
    assert (await ivan.json("GET", "/api/kpi/targets"))[0] == 403


def test_no_figure_is_neither_on_nor_off_target() -> None:
    # A service level with no calls to measure is not "below 80 %": it is not judged.
    assert on_target("service_level", None, 0.8) is None
    assert on_target("asa_s", 20.0, 20.0) is True and on_target("asa_s", 20.5, 20.0) is False
