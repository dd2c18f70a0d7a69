"""The audit log records every failed sign-in and every refused request (who, what, when, from
where); a burst of the same refusal from one address is written once and then summed up."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fixtures_refusals import (  # noqa: F401 - fixtures
    Site,
    fast_password_hashing,
    populated_templates,
    site,
    whisper_transcript,
)


async def test_failed_sign_ins_say_who_was_tried_from_where_when_and_why(site: Site) -> None:
    client = site.client()
    await client.login("ivan", "wrong password")
    site.wait(5)
    await client.login("Nobody", "whatever")
    await client.prime()
    async with client.send("POST", "/login", data={"username": "petr", "password": "nope",
                                                   "csrf_token": client.csrf}) as form:
        assert form.status == 401
    entries = await site.audit("sign_in_failed")
    assert [(e.username, e.role, e.ip, e.details["reason"]) for e in entries] == [
        ("ivan", "", "127.0.0.1", "wrong_password"),
        ("Nobody", "", "127.0.0.1", "unknown_user"),
        ("petr", "", "127.0.0.1", "wrong_password"),
    ]
    assert entries[1].at == datetime.fromtimestamp(site.now[0], UTC)
    # Nothing else is written for them (no second "refused request" per failure).
    assert await site.audit("request_refused") == []


async def test_refused_requests_are_recorded_and_the_log_filters_by_action(site: Site) -> None:
    stranger = site.client()
    ivan = await site.signed_in("ivan")
    assert (await stranger.json("GET", "/api/calls"))[0] == 401
    assert (await ivan.json("GET", "/api/users"))[0] == 403
    async with ivan.send("GET", "/kpi") as page:
        assert page.status == 403
    async with ivan.send("GET", f"/calls/{site.data.petr_call_id}") as page:
        assert page.status == 403
    assert (await ivan.json("POST", "/api/logout", csrf=False))[0] == 403
    # A stranger sent to the sign-in page is being asked to sign in, not refused.
    async with stranger.send("GET", "/calls") as page:
        assert page.status == 302

    olga = await site.signed_in("olga")
    status, log = await olga.json("GET", "/api/audit", params={"action": "request_refused"})
    assert status == 200 and log["total"] == 5
    rows = [(e["username"], e["role"], e["target"], e["details"]["reason"], e["details"]["status"], e["ip"])
            for e in reversed(log["items"])]
    assert rows == [
        ("", "", "GET /api/calls", "sign_in_required", 401, "127.0.0.1"),
        ("ivan", "manager", "GET /api/users", "forbidden", 403, "127.0.0.1"),
        ("ivan", "manager", "GET /kpi", "forbidden", 403, "127.0.0.1"),
        ("ivan", "manager", f"GET /calls/{site.data.petr_call_id}", "forbidden", 403, "127.0.0.1"),
        ("ivan", "manager", "POST /api/logout", "csrf", 403, "127.0.0.1"),
    ]
    # What the person was told, in the words of the API (the log keeps the English msgid).
    assert log["items"][-2]["details"]["error"] == "your role may not do this"
    _, signed_in = await olga.json("GET", "/api/audit", params={"action": "sign_in"})
    assert {e["action"] for e in signed_in["items"]} == {"sign_in"} and signed_in["total"] == 2
    _, everything = await olga.json("GET", "/api/audit")
    assert everything["total"] == 7


async def test_a_burst_of_refusals_is_written_once_then_summed_up(site: Site) -> None:
    scanner = site.client()
    paths = [f"/api/calls/{n}" for n in range(25)] + ["/api/users", "/api/kpi"]
    for path in paths:
        assert (await scanner.json("GET", path))[0] == 401
    (first,) = await site.audit("request_refused")
    assert first.target == "GET /api/calls/0"

    # A minute later the next one closes the burst: one entry says how many more, and which paths.
    site.wait(61)
    assert (await scanner.json("GET", "/api/me"))[0] == 401
    first_, summary, next_burst = await site.audit("request_refused")
    assert summary.details["repeated"] == len(paths) - 1
    assert summary.details["targets"] == [f"GET /api/calls/{n}" for n in range(1, 6)]
    assert (summary.details["reason"], summary.ip, summary.username) == ("sign_in_required", "127.0.0.1", "")
    assert next_burst.target == "GET /api/me" and "repeated" not in next_burst.details

    # Refusals still held when the daemon stops are written as it stops: none is lost.
    for _ in range(3):
        await scanner.json("GET", "/api/me")
    await site.server.stop()
    entries = await site.audit("request_refused")
    assert len(entries) == 4 and entries[-1].details["repeated"] == 3
