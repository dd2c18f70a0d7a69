"""The call journal in Russian on a desktop and on a phone: numbers as people write them, names
beside extensions, local times, rows as cards that fit a 390 px screen, a refused search explained."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.e2e.browser import DESKTOP, PHONE, Floor, shot, sign_in

# The first captured call: +79161110001 answered by 203 (Anna Kuznetsova) at 20:04:09 UTC on 26.11.2026.
IVAN_NUMBER = "+7 (916) 111-00-01"
IVAN_STARTED = "26.11.2026 23:04:09"  # Moscow time
MANAGER = "Anna Kuznetsova (203)"


def _ivan_row(page: Any, floor: Floor) -> Any:
    row = page.locator(f"#calls-table tr.call-row[data-call-id='{floor.data.ivan_call_id}']")
    row.wait_for()
    return row


def _overflow(page: Any) -> int:
    """How many pixels the page is wider than the screen."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def test_journal_in_russian_on_a_desktop_and_a_phone(floor: Floor) -> None:
    for width in (DESKTOP, PHONE):
        page = sign_in(floor, "olga", "/calls?from=2026-11-26&to=2026-11-26&per_page=200", width=width, locale="ru-RU")
        row = _ivan_row(page, floor)
        text = row.inner_text()
        assert IVAN_NUMBER in text and MANAGER in text and IVAN_STARTED in text, text
        # The blind transfer says to whom, by name.
        assert "→ Olga Smirnova (202)" in page.locator("#calls-table").inner_text()
        assert _overflow(page) <= 0, f"{width} px: the page is wider than the screen"
        folded = page.evaluate("!document.querySelector('#filters details.more-filters').open")
        if width == PHONE:
            # Rows are cards, one above another, each as wide as the screen at most.
            assert not page.locator("#calls-table thead").is_visible()
            box = row.bounding_box()
            assert box is not None and box["width"] <= PHONE
            assert folded, "the filters take the phone's screen"
            page.click("#filters summary")
            page.wait_for_selector("#filters input[name=client]", state="visible")
            assert _overflow(page) <= 0
        else:
            assert page.locator("#calls-table thead").is_visible() and not folded
        shot(page, f"journal-ru-{width}")
        page.context.close()


def test_a_refused_search_says_why_on_the_page(floor: Floor) -> None:
    page = sign_in(floor, "ivan", "/calls", width=PHONE, locale="ru-RU")
    page.wait_for_selector("#calls-table tbody tr")
    pasted = "информацию " * 500
    expected = page.request.get("/api/calls?q=" + quote(pasted)).json()["error"]
    page.goto("/calls?q=" + quote(pasted))
    message = page.wait_for_selector("#calls-error:not([hidden])")
    assert message.inner_text() == expected
    assert page.get_attribute("input[name=q]", "aria-invalid") == "true"
    assert _overflow(page) <= 0
    shot(page, "journal-refused-search")
    page.context.close()


YEAR = "from=2026-01-01&to=2026-12-31"


def test_a_figure_opens_as_its_calls_sorted_and_saved_as_a_filter(floor: Floor) -> None:
    page = sign_in(floor, "olga", f"/calls?kpi=missed&{YEAR}&per_page=200", width=DESKTOP)
    banner = page.wait_for_selector("#figure:not([hidden])")
    page.wait_for_selector("#calls-table tbody tr.call-row")
    rows = page.locator("#calls-table tbody tr.call-row").count()
    # The banner names the figure and counts exactly the rows listed; the talk time of them all is above.
    assert "Figure: Missed" in banner.inner_text() and page.inner_text("#figure-count") == f"{rows} calls"
    assert page.locator("#talk-total").inner_text().startswith("Talk time: ")
    statuses = page.eval_on_selector_all("#calls-table tbody tr.call-row", "rows => rows.map(r => r.className)")
    assert all("status-answered" not in s for s in statuses)
    # A column's header sorts by it, the longest talk first.
    page.click("#calls-table th a.sort[data-sort=talk]")
    page.wait_for_selector("#calls-table th[aria-sort=descending] a[data-sort=talk]")
    assert "sort=-talk" in page.url and "kpi=missed" in page.url
    # A preset, then the filters on now saved under a name, opened from the chip, and deleted.
    page.click("#presets [data-filter=outbound_unanswered] a")
    page.wait_for_selector("#presets .chip.on[data-filter=outbound_unanswered]")
    page.wait_for_selector("#calls-table tbody tr.call-row")
    directions = page.eval_on_selector_all("#calls-table td.direction", "cells => cells.map(c => c.textContent)")
    assert directions and all("outbound" in d for d in directions)
    page.goto("/calls?direction=inbound&min_duration=60&sort=-talk")
    page.wait_for_selector("#calls-table tbody tr.call-row")
    assert not page.locator("#figure").is_visible(), "no figure listed, yet its banner shows"
    page.fill("#save-filter input[name=name]", "Long inbound")
    page.click("#save-filter button")
    chip = page.wait_for_selector("#presets .chip.on:has-text('Long inbound')")
    assert page.locator("#save-filter").count() == 0  # these filters are saved already
    page.once("dialog", lambda dialog: dialog.accept())
    chip.query_selector(".chip-delete").click()
    page.wait_for_selector("#presets .chip:has-text('Long inbound')", state="detached")
    shot(page, "journal-presets")
    page.context.close()


def test_a_figures_calls_fit_a_phone(floor: Floor) -> None:
    page = sign_in(floor, "olga", f"/calls?kpi=lost_leads&{YEAR}", width=PHONE, locale="ru-RU")
    page.wait_for_selector("#figure:not([hidden])")
    page.wait_for_selector("#presets .chip")
    assert _overflow(page) <= 0, "the figure's banner or the presets are wider than the phone"
    shot(page, "journal-figure-phone")
    page.context.close()


def test_more_filters_fit_a_phone_and_a_side_search_says_the_side_is_unknown(floor: Floor) -> None:
    page = sign_in(floor, "olga", "/calls", width=PHONE, locale="ru-RU")
    page.wait_for_selector("#calls-table tbody tr")
    page.click("#filters details.more-filters > summary")
    said = page.locator("#said-filters")
    assert not said.evaluate("d => d.open"), "more filters open with none of them on"
    page.click("#said-filters > summary")
    for name in ("side", "stop_said", "failed_pick", "tag", "reviewed", "score_below", "score_at_least"):
        control = page.locator(f"#said-filters [name={name}]")
        assert control.is_visible(), name
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE, name
    assert _overflow(page) <= 0
    # The client's words on Ivan's one-channel call: found in the whole call, and the row says so.
    page.fill("#filters input[name=q]", "информация")
    page.select_option("#said-filters select[name=side]", "client")
    page.select_option("#said-filters select[name=reviewed]", "false")
    page.select_option("#said-filters select[name=reviewed]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/calls?*side=client*")
    assert "reviewed=" not in page.url
    row = _ivan_row(page, floor)
    note = row.locator(".side-unknown")
    assert note.is_visible() and note.inner_text().strip() != ""
    # The section stays open with its filter counted, and the saved-filter box keeps it.
    assert page.locator("#said-filters").evaluate("d => d.open")
    assert page.locator("#said-filters > summary .count").inner_text() == "1"
    assert _overflow(page) <= 0
    shot(page, "journal-more-filters-ru-390")
