"""The routing page's rules through the API, as ops save them: business hours up to 24:00, and
group members that must be extensions somebody knows, each bad one named in the answer."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbxbridge.routing.line_states import LineStates
from pbxbridge.routing.rules import Hours, RoutingRules, RulesError, rules_from_json
from pbxbridge.web.live import LiveBoard
from tests.fixtures_floor import FloorSite, floor_site  # noqa: F401 - fixture
from tests.fixtures_web import fast_password_hashing  # noqa: F401 - fixture

MSK = ZoneInfo("Europe/Moscow")


async def test_a_day_may_end_at_24_00_and_a_whole_day_is_00_00_to_24_00(floor_site: FloorSite) -> None:
    ops = await floor_site.signed_in("sergey")
    hours = [{"weekday": 0, "opens": "09:00", "closes": "24:00"}, {"weekday": 5, "opens": "00:00", "closes": "24:00"}]
    status, saved = await ops.json("PUT", "/api/routing/rules", json={"hours": hours})
    assert status == 200, saved
    assert (await ops.json("GET", "/api/routing/rules"))[1]["hours"] == hours


@pytest.mark.parametrize(
    ("opens", "closes", "bad"),
    [("09:00", "24:01", "«24:01»"), ("25:00", "26:00", "«25:00»"), ("18:00", "09:00", "18:00"), ("9:00", "18:00", "«9:00»")],
)
async def test_impossible_hours_are_refused_and_the_saved_ones_kept(
    floor_site: FloorSite, opens: str, closes: str, bad: str
) -> None:
    ops = await floor_site.signed_in("sergey")
    kept = [{"weekday": 1, "opens": "09:00", "closes": "18:00"}]
    assert (await ops.json("PUT", "/api/routing/rules", json={"hours": kept}))[0] == 200
    status, refused = await ops.json(
        "PUT", "/api/routing/rules", json={"hours": [{"weekday": 1, "opens": opens, "closes": closes}]}
    )
    assert status == 422
    assert refused["error"] == "The rules were not saved"
    assert any(bad in p for p in refused["problems"]), refused["problems"]
    assert all(f.startswith("hours[0]") for f in refused["fields"])
    assert (await ops.json("GET", "/api/routing/rules"))[1]["hours"] == kept


def test_open_until_midnight_means_open_at_23_59_and_closed_at_00_00() -> None:
    rules = RoutingRules(hours=(Hours(0, "09:00", "24:00"),))
    monday, tuesday = datetime(2026, 12, 7, 23, 59, tzinfo=MSK), datetime(2026, 12, 8, 0, 0, tzinfo=MSK)
    assert rules.is_open(monday) and not rules.is_open(tuesday)
    whole = RoutingRules(hours=(Hours(1, "00:00", "24:00"),))
    assert whole.is_open(tuesday) and whole.is_open(tuesday.replace(hour=23, minute=59))


async def test_members_must_be_known_extensions_each_bad_one_named(floor_site: FloorSite) -> None:
    ops = await floor_site.signed_in("sergey")
    good = [{"name": "north", "members": ["201", "202"]}]
    assert (await ops.json("PUT", "/api/routing/rules", json={"groups": good}))[0] == 200
    status, refused = await ops.json(
        "PUT", "/api/routing/rules", json={"groups": [{"name": "north", "members": ["201", "999", "abc"]}]}
    )
    assert status == 422
    assert refused["problems"] == [
        "Group north: no manager or line has extension 999.",
        "Group north: abc is not an extension (digits only).",
    ]
    assert refused["fields"] == ["groups[0].members", "groups[0].members"]
    # Nothing of the refused change was kept.
    assert (await ops.json("GET", "/api/routing/rules"))[1]["groups"][0]["members"] == ["201", "202"]


async def test_a_users_handset_counts_as_known(floor_site: FloorSite) -> None:
    # 203 is no manager row here, only the extension of the user ivan.
    ops = await floor_site.signed_in("sergey")
    async with floor_site.sessions() as db, db.begin():
        from sqlalchemy import delete

        from pbxbridge.clients.tables import Manager

        await db.execute(delete(Manager).where(Manager.extension == "203"))
    status, saved = await ops.json("PUT", "/api/routing/rules", json={"groups": [{"name": "n", "members": ["203"]}]})
    assert status == 200, saved


async def test_a_line_the_pbx_listed_counts_as_known(floor_site: FloorSite) -> None:
    states = LineStates()
    states.refresh([{"Event": "ExtensionStatus", "Exten": "207", "Status": "0", "Context": "ext-local"}])
    floor_site.context.live = LiveBoard(lambda: [], lines={"main": states})
    ops = await floor_site.signed_in("sergey")
    status, saved = await ops.json("PUT", "/api/routing/rules", json={"groups": [{"name": "n", "members": ["207"]}]})
    assert status == 200, saved
    status, refused = await ops.json("PUT", "/api/routing/rules", json={"groups": [{"name": "n", "members": ["208"]}]})
    assert status == 422 and "208" in refused["problems"][0]


async def test_other_changes_do_not_ask_about_members(floor_site: FloorSite) -> None:
    ops = await floor_site.signed_in("sergey")
    status, saved = await ops.json("PUT", "/api/routing/rules", json={"max_waiting": 5})
    assert status == 200 and saved["max_waiting"] == 5


def test_refused_rules_read_in_english_for_the_command_line() -> None:
    with pytest.raises(RulesError) as bad:
        rules_from_json({"hours": [{"weekday": 0, "opens": "18:00", "closes": "09:00"}]})
    assert bad.value.problems == ["hours[0]: opens 18:00 is not before closes 09:00 on Monday: split a night into two lines."]
