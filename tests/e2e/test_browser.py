"""The web app in a real browser (Debian's chromium through Playwright), served by the daemon:
each role's pages, search and play, click-to-call, the wallboard, another manager's call."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.browser import SEARCH_WORD, Floor, new_context, shot, sign_in


def test_each_role_lands_on_its_pages(floor: Floor) -> None:
    context = new_context(floor)
    login = context.new_page()
    login.goto("/calls")
    assert "/login" in login.url
    shot(login, "login")
    login.fill("input[name=username]", "olga")
    login.fill("input[name=password]", "not the password")
    login.click("button[type=submit]")
    assert "Wrong username or password" in login.inner_text(".error")
    context.close()

    expected = {
        "olga": ("/calls", {"Calls", "Missed calls", "Clients", "KPI", "Wallboard", "Routing", "Checklists", "CRM", "Audit log"}),
        "ivan": ("/calls", {"Calls", "Missed calls", "Clients", "Wallboard"}),
        "sergey": ("/wallboard", {"Wallboard", "Routing"}),
    }
    for username, (home, nav) in expected.items():
        page = sign_in(floor, username)
        page.wait_for_url(f"**{home}")
        assert set(page.locator("nav.main a").all_inner_texts()) == nav
        if home == "/calls":
            page.wait_for_selector("#calls-table tbody tr")
        shot(page, f"home-{username}")
        page.context.close()

    head = sign_in(floor, "olga", "/kpi")
    head.wait_for_selector("#chart-managers")
    head.wait_for_selector("#lost-leads table")
    shot(head, "kpi")
    head.goto("/audit")
    head.wait_for_selector("#audit-page tbody tr")
    assert "sign in" in head.inner_text("#audit-page")
    shot(head, "audit")
    head.goto("/clients")
    head.wait_for_selector("#clients-page tbody tr")
    shot(head, "clients")
    head.context.close()

    ops = sign_in(floor, "sergey", "/routing")
    ops.wait_for_selector("#rules-form")
    ops.fill("input[name=max_waiting]", "3")
    ops.click("text=+ Add group")
    ops.fill("tr.group-row input[name=g_name]", "north")
    ops.fill("tr.group-row input[name=g_members]", "201, 202")
    ops.click("#rules-form button[type=submit]")
    ops.wait_for_selector("text=Rules saved")
    ops.reload()
    ops.wait_for_selector("tr.group-row")
    assert ops.input_value("input[name=max_waiting]") == "3"
    assert ops.input_value("tr.group-row input[name=g_members]") == "201, 202"
    shot(ops, "routing")
    # ops has no journal: its page answers 403.
    assert ops.goto("/calls").status == 403
    ops.context.close()


def test_search_a_russian_word_and_play_from_the_hit(floor: Floor) -> None:
    page = sign_in(floor, "ivan", "/calls")
    page.wait_for_selector("#calls-table tbody tr")
    page.fill("input[name=q]", SEARCH_WORD)
    page.click("#filters button[type=submit]")
    hit = page.wait_for_selector("a.play-hit")
    assert "информация" in page.inner_text("td.hit mark")
    shot(page, "search")
    href = hit.get_attribute("href")
    match = re.search(r"[?&]t=([\d.]+)", href or "")
    assert match, href
    offset = float(match.group(1))
    assert offset > 10  # said well into the call, so a seek is visible

    hit.click()
    page.wait_for_url(re.compile(rf"/calls/{floor.data.ivan_call_id}\?t="))
    page.wait_for_selector("#waveform canvas, #waveform div")
    page.wait_for_function(f"document.getElementById('audio').currentTime >= {offset - 0.05}")
    # The segment holding the word is the one highlighted.
    page.wait_for_selector(".segment.current")
    assert "информация" in page.inner_text(".segment.current").lower()
    page.click("#play")
    page.wait_for_function(f"document.getElementById('audio').currentTime > {offset + 0.3}")
    position = page.evaluate("document.getElementById('audio').currentTime")
    assert offset <= position < offset + 10
    page.click(".speeds button[data-rate='2']")
    assert page.evaluate("document.getElementById('audio').playbackRate") == 2
    shot(page, "player")

    # Clicking a word plays from it.
    page.click("#play")  # pause
    first_word = page.locator(".segment .word").first
    start = float(first_word.get_attribute("data-start") or "0")
    first_word.click()
    page.wait_for_function(
        f"Math.abs(document.getElementById('audio').currentTime - {start}) < 1.5"
        f" && document.getElementById('audio').currentTime < {offset - 1}"
    )
    page.context.close()


def test_manager_starts_click_to_call_from_a_card(floor: Floor, expected: dict[str, Any]) -> None:
    card_api = f"/api/clients/{floor.data.ivan_client_id}"
    page = sign_in(floor, "ivan", f"/clients/{floor.data.ivan_client_id}")
    page.wait_for_selector(".timeline-item")
    before = {call["id"] for call in page.request.get(card_api).json()["calls"]}
    # In Russian, as a manager writes it (the pages are checked for English words after this).
    note = "Просил прайс-лист, перезвонить в понедельник."
    page.fill("textarea[name=note]", note)
    page.click("#note-add")
    page.wait_for_selector(f"#notes .note-text:has-text('{note}')")
    page.click("button.call-button[data-number='+79161110001']")
    page.wait_for_selector("text=your handset")
    shot(page, "client-card")
    (action,) = floor.daemon.originate.received
    assert action["Channel"] == "Local/203@from-internal"
    assert action["Exten"] == "79161110001"
    assert action["Context"] == "from-internal"

    # The PBX plays the captured click-to-call for this request: Ivan's handset (203)
    # rings and answers, the client answers and they talk. It lands on the client's card.
    floor.daemon.run(floor.daemon.calls_played_and_journaled(), 60)
    (call,) = [c for c in page.request.get(card_api).json()["calls"] if c["id"] not in before]
    truth = expected["pjsip-02-click-to-call"]["calls"][0]
    assert (call["direction"], call["status"], call["originated"]) == (truth["direction"], truth["status"], True)
    assert (call["manager"], call["client_number"], call["client_id"]) == ("203", "+79161110001", floor.data.ivan_client_id)
    for field in ("wait_s", "talk_s"):
        low, high = truth[field]
        assert low <= call[field] <= high, field
    # As Ivan sees it on the card, after a reload.
    page.reload()
    item = page.locator(".timeline-item", has=page.locator(f"a[href='/calls/{call['id']}']"))
    item.wait_for()
    assert "status-answered" in (item.get_attribute("class") or "")
    text = item.inner_text()
    # Direction, status and who placed it ("Name (203)", or the bare extension without a name).
    assert "↗ out" in text and "answered" in text and "203" in text, text
    # The note is the newest of the card's history, signed by Ivan.
    assert page.locator("#notes .note-text").first.inner_text() == note
    shot(page, "client-card-after-call")
    page.context.close()


def test_wallboard_shows_calls_as_the_trace_replays(floor: Floor) -> None:
    page = sign_in(floor, "sergey", "/wallboard")
    page.wait_for_selector("#live-status.on")
    # The looping burst keeps callers coming: a call in progress shows up, pushed over the WebSocket.
    page.wait_for_selector("#live-calls tr.live-call", timeout=45_000)
    page.wait_for_selector("#lines .line")
    numbers = page.locator("#live-calls tr.live-call td:nth-child(2)").all_inner_texts()
    # Numbers read as people write them (+7 (916) 555-00-04): compare the digits.
    assert any(re.sub(r"\D", "", n).startswith("7916555") for n in numbers), numbers
    shot(page, "wallboard")

    # Both PBXes' AMI sessions are up and the database answers: the daemon is ready.
    floor.daemon.run(floor.daemon.logged_in(), 60)
    ready = page.request.get("/readyz")
    checks = ready.json()["checks"]
    assert ready.status == 200, checks
    assert checks["ami"] == {"main": "logged in", "lab": "logged in"} and checks["database"] == "ok"
    page.context.close()


def test_manager_cannot_open_another_managers_call(floor: Floor) -> None:
    page = sign_in(floor, "petr", "/calls")
    response = page.goto(f"/calls/{floor.data.ivan_call_id}")
    assert response is not None and response.status == 403
    assert "another manager" in page.inner_text("main")
    shot(page, "forbidden")
    api = page.request.get(f"/api/calls/{floor.data.ivan_call_id}")
    assert api.status == 403
    own = page.goto(f"/calls/{floor.data.petr_call_id}")
    assert own is not None and own.status == 200
    page.wait_for_selector("#waveform")
    page.context.close()
