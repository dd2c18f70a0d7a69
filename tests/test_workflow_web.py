"""The missed-calls worklist over HTTP, on a real server over every captured call (both databases):
who sees and closes which row, calling back, bad input, reassigning cards in bulk."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.config import WorkflowConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from tests.fixtures_web import (  # noqa: F401 - fixtures
    ApiClient,
    PopulatedTemplates,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)

# Callers of the captures nobody answered and nobody called back (03, 05).
ABANDONED = "+79161110003"
BUSY_EVERYONE = "+79161110005"


@dataclasses.dataclass(slots=True)
class Desk:
    url: str
    context: WebContext
    rings: list[tuple[str, str]]
    clients: list[ApiClient]

    async def signed_in(self, username: str) -> ApiClient:
        client = ApiClient(self.url)
        self.clients.append(client)
        assert (await client.login(username)).status == 200
        return client

    async def audit(self, action: str) -> list[AuditEntry]:
        async with self.context.sessions() as db:
            return list((await db.execute(select(AuditEntry).where(AuditEntry.action == action))).scalars())


@pytest.fixture
async def desk(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[Desk]:
    """The web app over the captured calls, with 10 minutes allowed for a callback."""
    config = dataclasses.replace(web_config(db_url, shared_dir), workflow=WorkflowConfig(callback_due_min=10))
    await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    rings: list[tuple[str, str]] = []

    async def originate(extension: str, number: str) -> dict[str, Any]:
        # The PBX's side of click-to-call has its own tests (and the browser test plays it).
        rings.append((extension, number))
        return {"request_id": f"r{len(rings)}"}

    context = WebContext(
        config=config, sessions=session_factory(engine), signer=SessionSigner(config.web.secret_key),
        originate=originate,
    )
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    desk = Desk(server.url, context, rings, [])
    try:
        yield desk
    finally:
        for client in desk.clients:
            await client.close()
        await server.stop()
        await engine.dispose()


def by_number(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["number"]: row for row in listing["items"]}


async def test_rows_people_see_close_and_call_back(desk: Desk) -> None:
    head = await desk.signed_in("olga")
    status, listing = await head.json("GET", "/api/missed")
    assert status == 200
    rows = by_number(listing)
    # Every caller nobody answered or called back, one row each; 11's caller was called back.
    assert {ABANDONED, BUSY_EVERYONE} <= set(rows) and "+79163330001" not in rows
    row = rows[ABANDONED]
    assert row["number_display"] == "+7 (916) 111-00-03"
    assert (row["missed_calls"], row["manager"], row["overdue"]) == (1, None, True)
    assert listing["due_s"] == 600 and listing["overdue"] == len(rows)

    # The head gives both clients to Petr (202) in one action.
    ids = [rows[ABANDONED]["client_id"], rows[BUSY_EVERYONE]["client_id"]]
    status, answer = await head.json("POST", "/api/clients/assign", json={"client_ids": ids, "manager": "202"})
    assert (status, answer["assigned"]) == (200, 2)

    # Ivan (203) no longer sees them, nor may he close one or ring its number; each refusal is logged.
    ivan = await desk.signed_in("ivan")
    _, mine = await ivan.json("GET", "/api/missed")
    assert ABANDONED not in by_number(mine) and len(by_number(mine)) == len(rows) - 2
    assert all(r["manager"] is None for r in mine["items"])
    status, body = await ivan.json("POST", f"/api/missed/{ids[0]}/close", json={"reason": "spam"})
    assert status == 403 and body["error"]
    assert (await ivan.json("POST", f"/api/missed/{ids[0]}/call", json={}))[0] == 403
    refused = await desk.audit("missed_close_refused") + await desk.audit("missed_call_refused")
    assert sorted((e.username, e.target) for e in refused) == [("ivan", f"client:{ids[0]}")] * 2
    assert desk.rings == []

    # Petr sees his clients' rows and closes one as spam; it is gone, the other stays.
    petr = await desk.signed_in("petr")
    _, his = await petr.json("GET", "/api/missed")
    assert {ABANDONED, BUSY_EVERYONE} <= set(by_number(his))
    status, _ = await petr.json(
        "POST", f"/api/missed/{ids[0]}/close",
        json={"reason": "spam", "through_call_id": rows[ABANDONED]["last_missed_call_id"]},
    )
    assert status == 200
    _, his = await petr.json("GET", "/api/missed")
    assert ABANDONED not in by_number(his) and BUSY_EVERYONE in by_number(his)
    (closed,) = await desk.audit("missed_close")
    assert (closed.username, closed.details["reason"]) == ("petr", "spam")

    # Call back rings Petr's own handset with the client's number.
    status, answer = await petr.json("POST", f"/api/missed/{ids[1]}/call", json={})
    assert (status, answer["status"]) == (202, "ringing")
    assert desk.rings == [("202", BUSY_EVERYONE)]
    # The head without a handset of their own rings the client's manager.
    assert (await head.json("POST", f"/api/missed/{ids[1]}/call", json={}))[0] == 202
    assert desk.rings[-1] == ("202", BUSY_EVERYONE)


async def test_bad_input_is_refused_with_a_reason_and_loses_nothing(desk: Desk) -> None:
    ivan = await desk.signed_in("ivan")
    _, listing = await ivan.json("GET", "/api/missed")
    row = by_number(listing)[ABANDONED]
    close = f"/api/missed/{row['client_id']}/close"
    for body in ({"reason": "holiday"}, {}, {"reason": "spam", "through_call_id": "7"},
                 {"reason": "spam", "note": 5}, {"reason": "spam", "note": "x" * 2001}):
        status, answer = await ivan.json("POST", close, json=body)
        assert status == 400 and answer["error"], body
    # A call that is not this row's: the row changed (or never held it).
    status, answer = await ivan.json("POST", close, json={"reason": "spam", "through_call_id": 1})
    assert status == 409 and answer["error"]
    assert (await ivan.json("POST", "/api/missed/999999/close", json={"reason": "spam"}))[0] == 404
    assert (await ivan.json("POST", f"/api/missed/{row['client_id']}/call", json={"number": "+74951112233"}))[0] == 400
    # Only the head reassigns; a list with a card that does not exist changes nothing.
    assert (await ivan.json("POST", "/api/clients/assign", json={"client_ids": [row["client_id"]], "manager": "203"}))[0] == 403
    head = await desk.signed_in("olga")
    for body in ({"client_ids": [], "manager": "203"}, {"client_ids": ["x"], "manager": "203"},
                 {"client_ids": [row["client_id"]]}, {"client_ids": [row["client_id"]], "manager": "299"}):
        assert (await head.json("POST", "/api/clients/assign", json=body))[0] == 400, body
    status, _ = await head.json("POST", "/api/clients/assign", json={"client_ids": [row["client_id"], 999999], "manager": "203"})
    assert status == 404
    _, after = await ivan.json("GET", "/api/missed")
    assert by_number(after)[ABANDONED] == {**row, "open_s": by_number(after)[ABANDONED]["open_s"]}


async def test_the_page_for_heads_and_managers_only(desk: Desk) -> None:
    ivan = await desk.signed_in("ivan")
    async with ivan.send("GET", "/missed") as page:
        text = await page.text()
        assert page.status == 200 and "js/missed.js" in text and 'href="/missed"' in text
    ops = await desk.signed_in("sergey")
    async with ops.send("GET", "/missed") as page:
        assert page.status == 403
    assert (await ops.json("GET", "/api/missed"))[0] == 403


async def test_a_managers_pages_hear_of_their_own_clients_missed_calls(desk: Desk) -> None:
    head = await desk.signed_in("olga")
    _, listing = await head.json("GET", "/api/missed")
    rows = by_number(listing)
    for number, ext in ((ABANDONED, "203"), (BUSY_EVERYONE, "202")):
        status, _ = await head.json(
            "POST", "/api/clients/assign", json={"client_ids": [rows[number]["client_id"]], "manager": ext}
        )
        assert status == 200
    ivan = await desk.signed_in("ivan")
    # A page just opened learns where the journal is and announces nothing from before.
    status, first = await ivan.json("GET", "/api/missed/alerts")
    assert (status, first["items"]) == (200, []) and first["latest"] > 0
    # Everything after a point: only Ivan's own client's missed call.
    _, since = await ivan.json("GET", "/api/missed/alerts?after=0")
    assert [(i["call_id"], i["number_display"]) for i in since["items"]] == [
        (rows[ABANDONED]["last_missed_call_id"], "+7 (916) 111-00-03")
    ]
    _, later = await ivan.json("GET", f"/api/missed/alerts?after={since['items'][0]['call_id']}")
    assert later["items"] == []
    petr = await desk.signed_in("petr")
    _, his = await petr.json("GET", "/api/missed/alerts?after=0")
    assert [i["client_id"] for i in his["items"]] == [rows[BUSY_EVERYONE]["client_id"]]
    _, heads = await head.json("GET", "/api/missed/alerts?after=0")
    assert heads["items"] == []
    assert (await ivan.json("GET", "/api/missed/alerts?after=x"))[0] == 400
