"""The journal as a work tool and the way into it from the KPIs (real server, SQLite and PostgreSQL):
each figure's calls listed in the journal, as many as the figure; sorting by any column, stable across
pages; the talk time of the filtered calls; presets and each user's own saved filters."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from pbxbridge.kpi.callbacks import missed_not_called_back
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)
from tests.test_web_api import Site, site  # noqa: F401 - the web app over both databases

YEAR = {"from": "2026-01-01", "to": "2026-12-31"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}


async def _get(client: Any, path: str, **params: str) -> Any:
    status, body = await client.json("GET", path, params=params)
    assert status == 200, body
    return body


async def _figures(client: Any) -> list[dict[str, Any]]:
    return list((await _get(client, "/api/kpi", **YEAR))["rows"])


async def _all_calls(client: Any, **params: str) -> dict[str, Any]:
    page = await _get(client, "/api/calls", per_page="200", **params)
    assert page["total"] <= 200
    return dict(page)


async def test_the_journal_lists_exactly_the_calls_a_figure_counts(site: Site) -> None:
    olga = await site.signed_in("olga")
    rows = await _figures(olga)
    days = sorted({r["date"] for r in rows})
    assert days
    compared = 0
    for row in rows:
        manager = row["manager"]
        for kpi in ("missed", "answered", "calls_out", "lost_leads", "callbacks", "unique_clients_reached"):
            params = {"kpi": kpi, "from": row["date"], "to": row["date"], **({"manager": manager} if manager else {})}
            page = await _all_calls(olga, **params)
            assert page["total"] == (row[kpi] or 0) == page["kpi"]["count"], (row["date"], manager, kpi)
            assert page["kpi"]["name"] == kpi and page["kpi"]["manager"] == manager
            compared += page["total"]
    assert compared > 0
    # The department's missed calls of the whole period: every unanswered caller, whatever their status
    # (the status filter "missed" alone is one of the PBX's reasons and lists fewer).
    missed = sum(r["missed"] or 0 for r in rows if r["manager"] is None)
    listed = await _all_calls(olga, kpi="missed", **YEAR)
    assert listed["total"] == missed
    assert {c["status"] for c in listed["items"]} >= {"missed", "abandoned"}
    assert all(c["direction"] == "inbound" and c["status"] != "answered" for c in listed["items"])
    assert (await _all_calls(olga, status="missed", **YEAR))["total"] < missed


async def test_the_wallboards_missed_not_called_back_opens_as_its_clients(site: Site) -> None:
    olga = await site.signed_in("olga")
    days = sorted({r["date"] for r in await _figures(olga)})
    listed = 0
    for day in days:
        async with site.context.sessions() as db:
            figure = (await missed_not_called_back(db, date.fromisoformat(day))).callers
        page = await _all_calls(olga, kpi="missed_not_called_back", **{"from": day, "to": day})
        assert page["total"] == figure == page["kpi"]["count"], day
        assert page["kpi"]["unit"] == "clients"
        listed += figure
    assert listed > 0
    # Lead cards are no calls: the journal says so instead of listing something else.
    status, body = await olga.json("GET", "/api/calls", params={"kpi": "new_leads"}, headers=ENGLISH)
    assert status == 400 and body["field"] == "kpi"


async def test_a_figures_drill_down_has_as_many_rows_as_the_figure(site: Site) -> None:
    olga = await site.signed_in("olga")
    rows = [r for r in await _figures(olga) if r["manager"] is None]
    lost = sum(r["lost_leads"] or 0 for r in rows)
    body = await _get(olga, "/api/kpi/lost_leads/calls", per_page="200", **YEAR)
    assert body["count"] == len(body["rows"]) == lost > 0
    # One row per client and day, standing for all of that client's lost calls.
    assert sum(r["calls_counted"] for r in body["rows"]) >= lost
    assert body["journal_url"] == "/calls?kpi=lost_leads&from=2026-01-01&to=2026-12-31"
    talked = await _get(olga, "/api/kpi/talk_s/calls", per_page="200", **YEAR)
    talk = sum(r["talk_s"] or 0 for r in rows)
    assert talked["is_count"] is False
    assert math.isclose(sum(c["talk_s"] for c in talked["rows"]), talk, abs_tol=0.01)
    status, refused = await olga.json("GET", "/api/kpi/offered/calls", params={"manager": "203", **YEAR})
    assert status == 400 and refused["field"] == "manager"
    status, _ = await olga.json("GET", "/api/kpi/nonsense/calls")
    assert status == 404
    ivan = await site.signed_in("ivan")
    status, _ = await ivan.json("GET", "/api/kpi/missed/calls")
    assert status == 403


async def test_sorting_by_any_column_is_stable_across_pages(site: Site) -> None:
    olga = await site.signed_in("olga")
    for sort, key in (("talk", "talk_s"), ("-talk", "talk_s"), ("wait", "wait_s"), ("-duration", "duration_s"),
                      ("status", "status"), ("-direction", "direction")):
        whole = (await _all_calls(olga, sort=sort))["items"]
        values = [c[key] for c in whole]
        assert values == sorted(values, reverse=sort.startswith("-")), sort
        # Three calls a page: the pages together are the whole list, in the same order, none twice.
        paged: list[int] = []
        for page in range(1, math.ceil(len(whole) / 3) + 1):
            paged += [c["id"] for c in (await _get(olga, "/api/calls", sort=sort, per_page="3", page=str(page)))["items"]]
        assert paged == [c["id"] for c in whole], sort
    by_client = (await _all_calls(olga, sort="client"))["items"]
    assert by_client[0]["client_name"] or by_client[0]["client_number"]
    status, body = await olga.json("GET", "/api/calls", params={"sort": "password"}, headers=ENGLISH)
    assert status == 400 and body["field"] == "sort"


async def test_the_talk_time_of_the_filtered_calls(site: Site) -> None:
    olga = await site.signed_in("olga")
    for params in ({}, {"direction": "outbound"}, {"kpi": "answered", **YEAR}):
        page = await _all_calls(olga, **params)
        assert math.isclose(page["talk_s_total"], sum(c["talk_s"] for c in page["items"]), abs_tol=0.01), params
    assert (await _all_calls(olga))["talk_s_total"] > 0


async def test_presets_and_saved_filters_are_each_users_own(site: Site) -> None:
    ivan = await site.signed_in("ivan")
    petr = await site.signed_in("petr")
    lists = await _get(ivan, "/api/calls/filters")
    assert [p["id"] for p in lists["presets"]] == ["todays_missed", "long_calls", "outbound_unanswered"]
    assert lists["saved"] == []
    (outbound,) = [p["query"] for p in lists["presets"] if p["id"] == "outbound_unanswered"]
    olga = await site.signed_in("olga")
    page = await _get(olga, "/api/calls?" + outbound + "&per_page=200")
    assert page["items"] and all(c["direction"] == "outbound" and c["status"] != "answered" for c in page["items"])
    status, saved = await ivan.json("POST", "/api/calls/filters",
                                    json={"name": "  Долгие   входящие ", "query": "?direction=inbound&min_duration=60&page=3"})
    assert status == 201 and saved["name"] == "Долгие входящие"
    assert saved["query"] == "direction=inbound&min_duration=60"  # the page is no filter
    # The same name again replaces its filters.
    status, again = await ivan.json("POST", "/api/calls/filters",
                                    json={"name": "Долгие входящие", "query": "direction=inbound&min_duration=120"})
    assert status == 201 and again["id"] == saved["id"]
    mine = (await _get(ivan, "/api/calls/filters"))["saved"]
    assert mine == [{"id": saved["id"], "name": "Долгие входящие", "query": "direction=inbound&min_duration=120"}]
    assert (await _get(petr, "/api/calls/filters"))["saved"] == []
    status, _ = await petr.json("DELETE", f"/api/calls/filters/{saved['id']}")
    assert status == 404
    for body, field in (({"name": "", "query": "direction=inbound"}, "name"),
                        ({"name": "x" * 81, "query": "direction=inbound"}, "name"),
                        ({"name": "Ничего", "query": "page=2"}, "query"),
                        ({"name": "Плохой", "query": "min_duration=abc"}, "min_duration")):
        status, refused = await ivan.json("POST", "/api/calls/filters", json=body, headers=ENGLISH)
        assert status == 400 and refused["field"] == field, (body, refused)
    assert len((await _get(ivan, "/api/calls/filters"))["saved"]) == 1  # nothing refused was kept
    async with ivan.send("DELETE", f"/api/calls/filters/{saved['id']}") as response:
        assert response.status == 204
    assert (await _get(ivan, "/api/calls/filters"))["saved"] == []
