"""What the KPI page reads from the API: whether a period had any call at all, lost leads with
numbers as people write them, and refusals a person can read, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures_floor import FloorSite, serve_floor
from tests.fixtures_web import fast_password_hashing  # noqa: F401 - fixture

LAB_DAY = "2026-11-26"
TRACES = ("01-inbound-answered.ami", "03-inbound-abandoned.ami", "11-missed-then-callback.ami")


@pytest.fixture
async def kpi_site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[FloorSite]:  # noqa: F811
    async with serve_floor(db_url, shared_dir) as site:
        await site.journal([shared_dir / name for name in TRACES])
        yield site


async def test_a_day_with_calls_is_not_empty_and_a_day_without_is(kpi_site: FloorSite) -> None:
    olga = await kpi_site.signed_in("olga")
    status, day = await olga.json("GET", "/api/kpi", params={"from": LAB_DAY, "to": LAB_DAY})
    assert status == 200 and day["empty"] is False
    department = next(r for r in day["rows"] if r["manager"] is None)
    assert department["offered"] == 3
    # The week after: no call at all. The page is told so, not handed rows of zeros.
    status, quiet = await olga.json("GET", "/api/kpi", params={"from": "2026-12-01", "to": "2026-12-03"})
    assert status == 200 and quiet["empty"] is True and quiet["rows"] == []
    _, by_week = await olga.json("GET", "/api/kpi", params={"from": "2026-12-01", "to": "2026-12-03", "period": "week"})
    assert by_week["empty"] is True


async def test_lost_leads_carry_the_number_as_people_write_it(kpi_site: FloorSite) -> None:
    olga = await kpi_site.signed_in("olga")
    _, leads = await olga.json("GET", "/api/kpi/lost-leads", params={"from": LAB_DAY, "to": LAB_DAY})
    # 03's caller gave up and nobody called back (the later calls of the day are not in this
    # journal, so the window is still open); 11's was called back in time.
    (lost,) = leads["items"]
    assert (lost["client_number"], lost["client_display"], lost["state"]) == ("+79161110003", "+7 (916) 111-00-03", "at_risk")
    assert lost["rang"] == ["203", "202"]


async def test_a_bad_period_is_refused_in_words(kpi_site: FloorSite) -> None:
    olga = await kpi_site.signed_in("olga")
    assert await olga.json("GET", "/api/kpi", params={"from": "2026-11-27", "to": LAB_DAY}) == (
        400, {"error": "The period starts after it ends"})
    status, bad = await olga.json("GET", "/api/kpi", params={"from": "26.11.2026"})
    assert status == 400 and bad["error"] == "from: a date as YYYY-MM-DD, not 26.11.2026"
