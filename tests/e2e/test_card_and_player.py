"""The client card and the player in Chromium, in Russian: the card shows what was saved without a
reload, the head chooses whose handset rings, the player's skips, speeds and keys act on the
audio, the spoken line is highlighted, listening and downloading reach the audit log, and both
pages fit a 390 px phone."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge.web.app import WebServer
from tests.e2e.browser import DESKTOP, PHONE, WAIT_S, Floor, shot, sign_in
from tests.fixtures_web import IVAN_CLIENT, PETR_CLIENT

AUDIO = "document.getElementById('audio')"


def audio(page: Any, prop: str) -> Any:
    return page.evaluate(f"{AUDIO}.{prop}")


def wait_time(page: Any, low: float, high: float) -> None:
    """Until the audio's position is within [low, high]."""
    page.wait_for_function(f"{AUDIO}.currentTime >= {low} && {AUDIO}.currentTime <= {high}")


def wait_until(check: Any, what: str) -> Any:
    """Poll a check made outside the page (the PBX's received actions, the audit log)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"still waiting for {what}")


def no_sideways_scroll(page: Any) -> None:
    """Nothing on the page is wider than the screen."""
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wide = page.evaluate(
        "[...document.querySelectorAll('main *')].filter((n) => n.getBoundingClientRect().right > "
        f"{width} + 1).map((n) => n.tagName + '.' + n.className).slice(0, 5)"
    )
    assert wide == [], wide


def audit_entries(head: Any, after_id: int, action: str) -> list[dict[str, Any]]:
    items = head.request.get("/api/audit?per_page=500").json()["items"]
    return [e for e in items if e["id"] > after_id and e["action"] == action]


def last_audit_id(head: Any) -> int:
    items = head.request.get("/api/audit?per_page=1").json()["items"]
    return int(items[0]["id"]) if items else 0


def forget_earlier_listening(floor: Floor) -> None:
    """Earlier tests on this daemon played the same recording: this test's play is a new listening."""
    daemon = floor.daemon.daemon
    assert daemon is not None
    (server,) = [c.server for c in daemon.components if isinstance(getattr(c, "server", None), WebServer)]

    async def clear() -> None:
        server.context.listens.clear()

    floor.daemon.run(clear())


def test_card_shows_what_was_saved_and_the_head_chooses_whose_handset_rings(floor: Floor) -> None:
    client_id = floor.data.petr_client_id
    page = sign_in(floor, "olga", f"/clients/{client_id}", width=DESKTOP, locale="ru-RU")
    page.wait_for_selector("#card-form")
    original = page.request.get(f"/api/clients/{client_id}").json()
    managers = page.request.get("/api/managers").json()["items"]
    assert {"202", "203"} <= {m["extension"] for m in managers}
    # The number as people write it, beside its Call button.
    assert page.inner_text("ul.numbers .number") == "+7 (916) 111-00-02"
    page.evaluate("window.sameDocument = true")

    page.fill("input[name=name]", "  Пётр Клиентов  ")
    page.select_option("select[name=responsible_manager]", "")
    page.click("#card-form button[type=submit]")
    page.wait_for_function("document.querySelector('#card-head h1').textContent === 'Пётр Клиентов'")
    assert page.input_value("input[name=name]") == "Пётр Клиентов"
    assert page.inner_text("#crumb-name") == "Пётр Клиентов"
    assert "(202)" not in page.inner_text("#card-summary")

    # No manager of its own: nobody is chosen for the head, and Ring waits for a choice.
    received = floor.daemon.originate.received
    before = len(received)
    page.click(f"button.call-button[data-number='{PETR_CLIENT}']")
    page.wait_for_selector("#ring-dialog[open]")
    assert page.input_value("#ring-extension") == ""
    assert page.is_disabled("#ring-confirm")
    labels = page.locator("#ring-extension option:not([disabled])").all_inner_texts()
    for m in managers:
        assert any(label.endswith(f"({m['extension']})") or label == m["extension"] for label in labels), labels
    page.select_option("#ring-extension", "202")
    page.click("#ring-confirm")
    # "The handset of … (202) is ringing", or the reason it is not.
    page.wait_for_function("document.querySelector('#notice .notice').textContent.includes('202')"
                           " || !!document.querySelector('#notice .notice-error')")
    assert page.locator("#notice .notice-ok").count() == 1, page.inner_text("#notice")
    action = wait_until(lambda: received[before:] and received[before], "the Originate")
    assert action["Channel"] == "Local/202@from-internal"
    assert action["Exten"] == PETR_CLIENT.lstrip("+")
    shot(page, "card-head-rings-202")

    # Now the card has a manager: saved, shown at once, and the one the Call button offers first.
    page.select_option("select[name=responsible_manager]", "203")
    page.click("#card-form button[type=submit]")
    page.wait_for_function("document.getElementById('card-summary').textContent.includes('203')")
    page.click(f"button.call-button[data-number='{PETR_CLIENT}']")
    page.wait_for_selector("#ring-dialog[open]")
    assert page.input_value("#ring-extension") == "203"
    assert page.is_enabled("#ring-confirm")
    page.click("#ring-dialog button.cancel")
    page.wait_for_selector("#ring-dialog", state="detached")
    assert len(received) == before + 1
    assert page.evaluate("window.sameDocument") is True

    # A note joins the history at its top, signed and dated, without a reload; the earlier ones stay.
    notes_before = len(original["note_history"])
    page.fill("#note-text", "Просил перезвонить после 15:00")
    page.click("#note-add")
    page.wait_for_selector("#notes .note >> text=Просил перезвонить после 15:00")
    assert page.locator("#notes .note").count() == notes_before + 1
    signed = page.inner_text("#notes .note:first-child .note-by")
    assert signed.startswith("olga, ") and datetime.now(ZoneInfo("Europe/Moscow")).strftime("%d.%m.%Y") in signed
    assert page.input_value("#note-text") == ""
    assert page.evaluate("window.sameDocument") is True

    # The card as it was, for the tests after this one; the PBX has played the call it placed.
    page.fill("input[name=name]", original["name"] or "")
    page.select_option("select[name=responsible_manager]", original["responsible_manager"] or "")
    page.click("#card-form button[type=submit]")
    page.wait_for_function(
        f"document.getElementById('card-summary').textContent.includes({(original['responsible_manager'] or '')!r})"
    )
    floor.daemon.run(floor.daemon.calls_played_and_journaled(), 60)
    page.context.close()


def test_player_skips_speeds_keys_transcript_and_what_the_audit_log_says(floor: Floor) -> None:
    forget_earlier_listening(floor)
    head = sign_in(floor, "olga", "/calls", width=DESKTOP, locale="ru-RU")
    since = last_audit_id(head)
    call_id, recording_id = floor.data.ivan_call_id, floor.data.ivan_recording_id
    page = sign_in(floor, "ivan", f"/calls/{call_id}", width=DESKTOP, locale="ru-RU")
    page.wait_for_function(f"{AUDIO}?.readyState >= 1")
    page.wait_for_selector("#waveform canvas, #waveform div")
    duration = audio(page, "duration")
    assert duration > 25

    # ±10 s, never past either end.
    page.click("#ahead10")
    wait_time(page, 9.9, 10.1)
    page.click("#ahead10")
    wait_time(page, 19.9, 20.1)
    page.click("#back10")
    wait_time(page, 9.9, 10.1)
    page.click("#back10")
    page.click("#back10")
    wait_time(page, 0, 0.01)

    for rate in (0.75, 1, 1.5, 2, 1.25):
        page.click(f".speeds button[data-rate='{rate}']")
        assert audio(page, "playbackRate") == rate
        assert page.get_attribute(f".speeds button[data-rate='{rate}']", "aria-pressed") == "true"
    # Nothing was played yet: loading the audio, drawing its waveform and seeking are not listening.
    assert audit_entries(head, since, "listen") == []

    # The speed is this browser's: a new visit plays at 1.25×.
    page.reload()
    page.wait_for_function(f"{AUDIO}?.readyState >= 1 && {AUDIO}.playbackRate === 1.25")
    page.wait_for_selector("#waveform canvas, #waveform div")
    # Playing waits for the audio's data; on a busy machine that takes more than a moment.
    page.set_default_timeout(WAIT_S * 1000)

    # Keys: → and ← step 5 s, space plays and pauses.
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    wait_time(page, 9.9, 10.1)
    page.keyboard.press("ArrowLeft")
    wait_time(page, 4.9, 5.1)
    page.keyboard.press("Space")
    page.wait_for_function(f"!{AUDIO}.paused && {AUDIO}.currentTime > 5.2")
    page.keyboard.press("Space")
    page.wait_for_function(f"{AUDIO}.paused")
    # Space on a focused button plays and pauses too, once, without pressing that button.
    position = audio(page, "currentTime")
    page.focus("#ahead10")
    page.keyboard.press("Space")
    page.wait_for_function(f"!{AUDIO}.paused")
    page.keyboard.press("Space")
    page.wait_for_function(f"{AUDIO}.paused")
    assert position <= audio(page, "currentTime") < position + 5
    # Typing is typing: no key seeks or plays.
    page.evaluate("document.querySelector('main').prepend(Object.assign(document.createElement('input'), {id: 'typing'}))")
    position = audio(page, "currentTime")
    page.focus("#typing")
    page.keyboard.type(" a")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    assert page.input_value("#typing") == " a"
    assert audio(page, "paused") is True and audio(page, "currentTime") == position
    page.evaluate("document.getElementById('typing').remove()")

    # One "listened", written when playback started; pausing, seeking and playing on add none.
    (listen,) = wait_until(lambda: audit_entries(head, since, "listen"), "the listen entry")
    assert (listen["username"], listen["target"]) == ("ivan", f"recording:{recording_id}")
    page.locator("h1").click()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    page.wait_for_function(f"{AUDIO}.paused")
    assert len(audit_entries(head, since, "listen")) == 1

    # The line being spoken is highlighted, follows the audio, and is scrolled into its box.
    segments = page.locator(".segment")
    count = segments.count()
    assert count >= 3
    for index in (1, count - 1, 0):
        start = float(segments.nth(index).get_attribute("data-start") or "0")
        page.evaluate(f"{AUDIO}.currentTime = {start + 0.2}")
        page.wait_for_selector(f".segment.current[data-index='{index}']")
        assert page.locator(".segment.current").count() == 1
        assert page.evaluate(
            "(() => { const box = document.getElementById('transcript').getBoundingClientRect();"
            " const line = document.querySelector('.segment.current').getBoundingClientRect();"
            " return line.top >= box.top - 1 && line.top < box.bottom; })()"
        ), index
    # A click on a line plays from it.
    target = segments.nth(2)
    start = float(target.get_attribute("data-start") or "0")
    target.locator(".time").click()
    page.wait_for_function(f"!{AUDIO}.paused && {AUDIO}.currentTime >= {start}")
    page.wait_for_selector(".segment.current[data-index='2']")
    page.locator("h1").click()
    page.keyboard.press("Space")
    shot(page, "player-ru")

    # The download is named for the client, the local day and time, and the manager.
    call = page.request.get(f"/api/calls/{call_id}").json()
    started = datetime.fromisoformat(call["started_at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Moscow"))
    manager = call["manager_name"] or call["manager"]
    with page.expect_download() as info:
        page.click("#download")
    name = info.value.suggested_filename
    assert name == f"{IVAN_CLIENT}_{started:%d.%m.%Y}_{started:%H-%M}_{manager}.wav"
    (download,) = wait_until(lambda: audit_entries(head, since, "download"), "the download entry")
    assert (download["username"], download["target"]) == ("ivan", f"recording:{recording_id}")
    assert len(audit_entries(head, since, "listen")) == 1
    page.context.close()
    head.context.close()


def test_card_clients_and_player_fit_a_phone(floor: Floor) -> None:
    page = sign_in(floor, "ivan", f"/clients/{floor.data.ivan_client_id}", width=PHONE, locale="ru-RU")
    page.wait_for_selector(".timeline-item")
    no_sideways_scroll(page)
    call_button = page.locator(f"button.call-button[data-number='{IVAN_CLIENT}']").bounding_box()
    assert call_button is not None and call_button["x"] + call_button["width"] <= PHONE
    assert call_button["height"] >= 40  # a thumb's worth
    shot(page, "card-phone")
    # The card's own players fetch nothing until played, and report the start of listening once.
    inline = "document.querySelector('.timeline-item audio')"
    assert page.evaluate(f"{inline}.preload") == "none"
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/listen")) as reported:
        page.evaluate(f"{inline}.play()")
    source = page.evaluate(f"{inline}.src")
    assert reported.value.url == source.replace("/audio", "/listen")
    page.evaluate(f"{inline}.pause()")

    page.goto("/clients")
    page.wait_for_selector(".clients-table tbody tr")
    no_sideways_scroll(page)
    shot(page, "clients-phone")

    page.goto(f"/calls/{floor.data.ivan_call_id}")
    page.wait_for_function(f"{AUDIO}?.readyState >= 1")
    page.wait_for_selector(".segment")
    no_sideways_scroll(page)
    for control in ("#back10", "#play", "#ahead10", ".speeds button[data-rate='2']", "#download"):
        box = page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE, control
    page.click("#ahead10")
    wait_time(page, 9.9, 10.1)
    shot(page, "player-phone")
    page.context.close()
