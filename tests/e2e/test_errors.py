"""Error pages and the audit log in a real browser, on a phone: a refused page says why and leads
back home; the head finds the refusal in the audit log, filtered by what happened."""

from __future__ import annotations

from tests.e2e.browser import PHONE, Floor, shot, sign_in

NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"


def test_a_refused_page_leads_home_and_the_head_finds_it_in_the_audit_log(floor: Floor) -> None:
    ivan = sign_in(floor, "ivan", "/calls", width=PHONE)
    response = ivan.goto("/kpi")
    assert response is not None and response.status == 403
    assert ivan.inner_text(".error-page h1") == "Access denied"
    assert "Your role may not open this page." in ivan.inner_text(".error-page")
    assert ivan.evaluate(NO_SIDEWAYS_SCROLL)
    shot(ivan, "error-403-phone")
    response = ivan.goto(f"/calls/{floor.data.petr_call_id}")
    assert response is not None and response.status == 403
    assert "This call belongs to another manager." in ivan.inner_text(".error-page")
    response = ivan.goto("/no/such/page")
    assert response is not None and response.status == 404
    ivan.click(".error-page a.primary")
    ivan.wait_for_url("**/calls")
    ivan.context.close()

    olga = sign_in(floor, "olga", "/audit", width=PHONE)
    olga.wait_for_selector("#audit-page tbody tr")
    olga.select_option("#audit-action", "request_refused")
    olga.wait_for_url("**/audit?*action=request_refused*")
    olga.wait_for_function(
        "[...document.querySelectorAll('#audit-page .audit-action')].every(e => e.textContent === 'Request refused')"
    )
    entries = olga.locator("#audit-page tbody tr").all_inner_texts()
    assert any("ivan" in e and "GET /kpi" in e and "not allowed" in e for e in entries), entries
    assert any(f"GET /calls/{floor.data.petr_call_id}" in e for e in entries), entries
    # On a phone each entry is a card of labelled lines, nothing wider than the screen.
    assert olga.locator("#audit-page thead").is_hidden()
    labels = olga.evaluate(
        "[...document.querySelectorAll('#audit-page tbody tr:first-child td')]"
        ".map(td => getComputedStyle(td, '::before').content)"
    )
    assert labels == ['"When"', '"Who"', '"Role"', '"Action"', '"What"', '"Details"', '"From"']
    assert olga.evaluate(NO_SIDEWAYS_SCROLL)
    shot(olga, "audit-phone")
    olga.context.close()
