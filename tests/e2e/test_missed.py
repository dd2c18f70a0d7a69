"""Missed calls to return, in Chromium on a phone's width: a manager calls a missed client back
from the list, the PBX (the simulator playing a captured click-to-call) connects them, the row closes."""

from __future__ import annotations

from typing import Any

from tests.e2e.browser import PHONE, Floor, shot, sign_in

# 03-inbound-abandoned's caller: nobody answered, nobody called back.
CALLER = "+79161110003"


def test_a_manager_calls_back_from_the_missed_list_and_the_row_closes(floor: Floor) -> None:
    page: Any = sign_in(floor, "ivan", "/missed", width=PHONE, locale="ru-RU")
    listing = page.request.get("/api/missed").json()
    (row,) = [r for r in listing["items"] if r["number"] == CALLER]
    article = page.locator(f"article.missed-row[data-client-id='{row['client_id']}']")
    article.wait_for()
    # What a manager checks before calling: who, how many times, the number as people write it.
    text = article.inner_text()
    assert "+7 (916) 111-00-03" in text, text
    assert "overdue" in (article.get_attribute("class") or "")
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
    shot(page, "missed-phone")

    already = len(floor.daemon.originate.received)
    article.locator("button.call-back").click()
    page.wait_for_selector("#notice .notice-ok")
    action = floor.daemon.originate.received[already]
    # Ivan's own handset rings first, then the client's number is dialled.
    assert action["Channel"] == "Local/203@from-internal"
    assert action["Exten"].endswith("9161110003"), action

    # The PBX plays the captured click-to-call for it: the client answers and they talk.
    floor.daemon.run(floor.daemon.calls_played_and_journaled(), 60)
    article.wait_for(state="detached", timeout=30_000)
    after = page.request.get("/api/missed").json()
    assert CALLER not in {r["number"] for r in after["items"]}
    assert len(after["items"]) == len(listing["items"]) - 1


# The looping burst's callers who give up waiting: a new missed call from each every pass (~28 s).
BURST_ABANDONED = ("+79165550003", "+79165550006", "+79165550008", "+79165550009", "+79165550010", "+79165550011")


def test_the_head_gives_clients_to_a_manager_whose_open_page_then_hears_of_their_missed_call(floor: Floor) -> None:
    head: Any = sign_in(floor, "olga", "/missed")
    rows = {r["number"]: r for r in head.request.get("/api/missed").json()["items"]}
    ids = [rows[n]["client_id"] for n in BURST_ABANDONED if n in rows]
    assert ids, sorted(rows)
    # In bulk: tick the rows, pick Ivan, assign.
    for client_id in ids:
        head.check(f"article.missed-row[data-client-id='{client_id}'] input.pick")
    head.select_option(".missed-bulk select[name=manager]", "203")
    head.click(".missed-bulk button.assign")
    head.wait_for_selector("#notice .notice-ok")
    after = {r["client_id"]: r["manager"] for r in head.request.get("/api/missed").json()["items"]}
    assert {after[i] for i in ids} == {"203"}

    # A row closed by hand, with its reason: the form shows only once Close is pressed.
    other = next(r for r in rows.values() if r["client_id"] not in ids)
    row = head.locator(f"article.missed-row[data-client-id='{other['client_id']}']")
    assert row.locator("form.close-form").is_hidden()
    row.locator("button.close-row").click()
    row.locator("select[name=reason]").select_option("wrong_number")
    row.locator("form.close-form button[type=submit]").click()
    row.wait_for(state="detached")

    # Ivan has the journal open; the next pass of the burst misses one of his clients again.
    ivan: Any = sign_in(floor, "ivan", "/calls")
    alert = ivan.locator("#missed-call-alert .notice-alert")
    alert.wait_for(timeout=90_000)
    assert "+7 (916) 555-00-" in alert.inner_text()
    assert alert.locator("a[href='/missed']").count() == 1
