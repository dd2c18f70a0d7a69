"""Error pages and the audit log in a real browser, on a phone, in Russian: a refused page says why
and leads back home; the head finds the refusal in the audit log, filtered by what happened."""

from __future__ import annotations

import re

from tests.e2e.browser import PHONE, Floor, shot, sign_in

NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def russian(text: str) -> bool:
    """Words a Russian reader reads as Russian (not the English msgid left untranslated)."""
    return bool(CYRILLIC.search(text))


def test_a_refused_page_leads_home_and_the_head_finds_it_in_the_audit_log(floor: Floor) -> None:
    ivan = sign_in(floor, "ivan", "/calls", width=PHONE, locale="ru-RU")
    response = ivan.goto("/kpi")
    assert response is not None and response.status == 403
    heading, message = ivan.inner_text(".error-page h1"), ivan.inner_text(".error-page .error-message")
    home = ivan.inner_text(".error-page a.primary")
    assert all(russian(words) for words in (heading, message, home)), (heading, message, home)
    assert ivan.evaluate(NO_SIDEWAYS_SCROLL)
    shot(ivan, "error-403-phone")
    response = ivan.goto(f"/calls/{floor.data.petr_call_id}")
    assert response is not None and response.status == 403
    assert russian(ivan.inner_text(".error-page .error-message"))
    response = ivan.goto("/no/such/page")
    assert response is not None and response.status == 404
    assert russian(ivan.inner_text(".error-page h1"))
    ivan.click(".error-page a.primary")
    ivan.wait_for_url("**/calls")
    ivan.context.close()

    olga = sign_in(floor, "olga", "/audit", width=PHONE, locale="ru-RU")
    olga.wait_for_selector("#audit-page tbody tr")
    olga.select_option("#audit-action", "request_refused")
    olga.wait_for_url("**/audit?*action=request_refused*")
    chosen = olga.locator("#audit-action option:checked").inner_text()
    assert russian(chosen)
    olga.wait_for_function(
        "name => [...document.querySelectorAll('#audit-page .audit-action')].every(e => e.textContent === name)", arg=chosen
    )
    entries = olga.locator("#audit-page tbody tr").all_inner_texts()
    assert any("ivan" in e and "GET /kpi" in e for e in entries), entries
    assert any(f"GET /calls/{floor.data.petr_call_id}" in e for e in entries), entries
    # Russian dates (07.12.2026 21:05:09) and reasons in words.
    assert all(re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", e) for e in entries), entries
    assert all(russian(d) for d in olga.locator("#audit-page .audit-details").all_inner_texts())
    # On a phone each entry is a card of labelled lines, nothing wider than the screen.
    assert olga.locator("#audit-page thead").is_hidden()
    labels = olga.evaluate(
        "[...document.querySelectorAll('#audit-page tbody tr:first-child td')]"
        ".map(td => getComputedStyle(td, '::before').content)"
    )
    assert len(labels) == 7 and all(russian(label) for label in labels), labels
    assert olga.evaluate(NO_SIDEWAYS_SCROLL)
    shot(olga, "audit-phone")
    olga.context.close()
