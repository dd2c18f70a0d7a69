"""The floor's pages in Chromium, in Russian and English, on a desktop and on a phone: the
wallboard with names, numbers and the department's totals, and its TV mode; the KPI page with a
single day and with a period that had no calls; the routing page refusing unknown members and
keeping business hours that run to 24:00."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.browser import DESKTOP, PHONE, Floor, shot, sign_in

LAB_DAY = "2026-11-26"
# The looping burst's callers: +7 916 555-..., written as people write them.
BURST_NUMBER = re.compile(r"^\+7 \(916\) 555-\d\d-\d\d$")


def no_sideways_scroll(page: Any) -> None:
    """Nothing of the page's own content sticks out to the right of the screen.

    (The site's header is the layout's; its own tests hold it to the phone's width.)
    """
    out = page.evaluate("""() => [...document.querySelectorAll('main *')]
        .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > window.innerWidth + 0.5
                       && !e.closest('.scroll'))
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)""")
    assert not out, f"{page.url}: wider than the screen: {out[:5]}"
    # A table too wide for a phone scrolls inside its own box, never the page.
    assert page.evaluate("document.querySelector('main').scrollWidth <= window.innerWidth")


def translated(page: Any, message: str) -> str:
    """The message as the page's own catalog gives it (the Russian text is the catalog's to write)."""
    return str(page.evaluate("(m) => PBX.t(m)", message))


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_wallboard_names_numbers_and_totals_in_russian(floor: Floor, width: int) -> None:
    page = sign_in(floor, "sergey", "/wallboard", width=width, locale="ru-RU")
    page.wait_for_selector("#live-status.on")
    assert page.evaluate("PBX.language") == "ru"
    page.wait_for_selector("#live-calls tr.live-call", timeout=45_000)
    for tile, label in (("#total-waiting", "Waiting now"), ("#total-longest", "Longest wait now"),
                        ("#total-missed", "Missed today, not called back")):
        assert page.inner_text(f"{tile} .label") == translated(page, label)
        assert page.inner_text(f"{tile} .value").strip()
    # Today's missed callers not called back: a count (the looping burst leaves some every pass).
    assert re.fullmatch(r"\d+", page.inner_text("#total-missed .value"))
    numbers = [n for n in page.locator("#live-calls .client-number").all_inner_texts() if n]
    assert numbers and all(BURST_NUMBER.match(n) for n in numbers), numbers
    # Each line is a person: the manager's name from the PBX, the extension under it.
    names = {m["extension"]: m["name"] for m in page.request.get("/api/managers").json()["items"] if m["name"]}
    lines = page.locator("#lines .line")
    lines.first.wait_for()
    shown = {lines.nth(i).get_attribute("data-extension"): lines.nth(i).locator(".name").inner_text()
             for i in range(lines.count())}
    named = {ext: name for ext, name in shown.items() if ext in names}
    assert named and all(names[ext] == name for ext, name in named.items()), (shown, names)
    no_sideways_scroll(page)
    shot(page, f"wallboard-ru-{width}")


def test_wallboard_tv_mode_hides_the_header_and_keeps_updating(floor: Floor) -> None:
    page = sign_in(floor, "sergey", "/wallboard", width=DESKTOP, locale="ru-RU")
    page.goto("/wallboard?tv=1")
    page.wait_for_selector("#live-status.on")
    assert page.evaluate("document.body.classList.contains('tv')")
    assert not page.is_visible("header.top")
    big = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#total-waiting .value')).fontSize)")
    assert big >= 48
    # The board goes on: a call the burst starts later shows up without a reload.
    page.wait_for_selector("#live-calls tr.live-call", timeout=45_000)
    seen = set(page.locator("#live-calls tr.live-call").evaluate_all("rows => rows.map(r => r.dataset.linkedid)"))
    page.wait_for_function(
        "(seen) => [...document.querySelectorAll('#live-calls tr.live-call')].some(r => !seen.includes(r.dataset.linkedid))",
        arg=sorted(seen), timeout=60_000,
    )
    shot(page, "wallboard-tv")
    # Out of TV mode by its button: the header is back, and the address no longer asks for TV.
    page.click("#tv-toggle")
    assert page.is_visible("header.top")
    assert "tv=1" not in page.url
    page.click("#tv-toggle")
    assert not page.is_visible("header.top") and "tv=1" in page.url


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_kpi_single_day_draws_bars_with_russian_dates(floor: Floor, width: int) -> None:
    page = sign_in(floor, "olga", f"/kpi?from={LAB_DAY}&to={LAB_DAY}", width=width, locale="ru-RU")
    page.wait_for_selector("#chart-department")
    page.wait_for_function("window.Chart && Chart.getChart('chart-department')")
    built = page.evaluate("""() => {
        const c = Chart.getChart('chart-department');
        return { type: c.config.type, labels: c.data.labels,
                 bars: c.data.datasets.filter(d => (d.type || c.config.type) === 'bar').map(d => d.data),
                 drawn: c.getDatasetMeta(0).data.map(e => e.height) };
    }""")
    assert built["type"] == "bar"
    assert built["labels"] == ["26.11.2026"]
    assert all(len(d) == 1 for d in built["bars"]) and built["bars"][0][0] > 0
    # The "offered" bar of the one day stands up from the axis: a bar, not a dot.
    assert built["drawn"][0] > 10
    assert page.inner_text("#kpi-period") == page.evaluate("(d) => PBX.t('Figures for {day}', {day: d})", "26.11.2026")
    assert "26.11.2026" in page.inner_text("#kpi-table tbody tr:first-child td:first-child")
    no_sideways_scroll(page)
    shot(page, f"kpi-day-ru-{width}")


def test_kpi_period_without_calls_says_so(floor: Floor) -> None:
    page = sign_in(floor, "olga", "/kpi?from=2026-10-01&to=2026-10-03", width=PHONE, locale="en-US")
    page.wait_for_selector("#kpi-empty")
    assert page.inner_text("#kpi-empty") == "No calls in this period."
    assert page.locator("canvas").count() == 0
    assert not page.is_visible("#kpi-figures")
    assert page.locator("#kpi-tiles .tile").count() == 0
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_routing_refuses_unknown_members_and_keeps_hours_to_24_00(floor: Floor, width: int) -> None:
    page = sign_in(floor, "sergey", "/routing", width=width, locale="en-US")
    page.wait_for_selector("#rules-form")
    page.click("#add-group")
    row = page.locator("tr.group-row").last
    row.locator("input[name=g_name]").fill(f"floor-{width}")
    row.locator("input[name=g_members]").fill("202, 999, abc")
    page.click("#rules-form button[type=submit]")
    page.wait_for_selector("#problems li")
    problems = page.locator("#problems li").all_inner_texts()
    assert f"Group floor-{width}: no manager or line has extension 999." in problems
    assert f"Group floor-{width}: abc is not an extension (digits only)." in problems
    assert row.locator("input[name=g_members]").get_attribute("aria-invalid") == "true"
    no_sideways_scroll(page)

    row.locator("input[name=g_members]").fill("202, 203")
    for tr in page.locator("tr.hours-row").all():
        tr.locator("button").click()
    page.click("#add-hours")
    hours = page.locator("tr.hours-row").last
    hours.locator("select[name=h_day]").select_option("0")
    hours.locator("input[name=h_opens]").fill("09:00")
    hours.locator("input[name=h_closes]").fill("24:00")
    page.click("#rules-form button[type=submit]")
    page.wait_for_selector("text=Rules saved")
    page.reload()
    page.wait_for_selector("tr.hours-row")
    assert page.input_value("tr.hours-row input[name=h_closes]") == "24:00"
    summary = page.locator("#hours-summary li").all_inner_texts()
    assert summary[0] == "Monday 09:00–24:00" and summary[1] == "Tuesday closed", summary
    assert "always open" not in page.inner_text("#routing-page")
    no_sideways_scroll(page)
    shot(page, f"routing-{width}")


def test_kpi_figures_beside_the_previous_period_and_coloured_off_target(floor: Floor) -> None:
    # Eleven days ending on the PJSIP lab's day: the eleven before them end on the Local lab's day.
    period = {"from": "2026-11-27", "to": "2026-12-07"}
    page = sign_in(floor, "olga", "/kpi?from={from}&to={to}".format(**period), width=PHONE, locale="ru-RU")
    page.wait_for_selector("#tile-offered .prev")
    lab_day = page.request.get(f"/api/kpi?from={LAB_DAY}&to={LAB_DAY}").json()
    offered_before = next(r for r in lab_day["rows"] if r["manager"] is None)["offered"]
    assert offered_before > 0
    shown_before = page.evaluate("(n) => PBX.t('before: {value}', {value: PBX.fmtNumber(n, 0)})", offered_before)
    assert shown_before in page.inner_text("#tile-offered .prev")
    assert page.inner_text("#kpi-previous") == page.evaluate(
        "() => PBX.t('Compared with {from} to {to}', {from: '16.11.2026', to: '26.11.2026'})")
    # Each figure leads to the calls it counts, over the same days.
    href = page.get_attribute("#tile-offered .value a", "href")
    assert href == "/calls?kpi=offered&from=2026-11-27&to=2026-12-07"

    # The head sets targets on the page: far more calls offered than came (higher is better: off target),
    # at most as many lost leads as could ever be (lower is better: on target), and each manager's calls out.
    try:
        for kpi, scope, value in (("offered", "department", "10000"), ("lost_leads", "department", "10000"),
                                  ("calls_out", "manager", "10000")):
            page.select_option("#target-kpi", kpi)
            page.select_option("#target-scope", scope)
            page.fill("#target-value", value)
            page.click("#target-form button[type=submit]")
            page.wait_for_selector(f"#target-list li[data-kpi={kpi}][data-scope={scope}]")
        page.wait_for_selector("#tile-offered.off-target")
        assert page.get_attribute("#tile-lost_leads", "class").split().count("on-target") == 1
        red = page.evaluate("getComputedStyle(document.querySelector('#tile-offered .value')).color")
        green = page.evaluate("getComputedStyle(document.querySelector('#tile-lost_leads .value')).color")
        assert red == "rgb(194, 59, 59)" and red != green
        # A count's target is per day: over eleven days it is eleven times as many.
        target = page.evaluate("() => PBX.t('target: at least {value}', {value: PBX.fmtNumber(110000, 0)})")
        assert page.inner_text("#tile-offered .target") == target
        # The department's every figure, in one table, judged the same way.
        rows = page.locator("#kpi-all tbody tr").evaluate_all(
            "trs => Object.fromEntries(trs.map(tr => [tr.dataset.kpi, tr.className]))")
        assert (rows["offered"], rows["lost_leads"]) == ("off-target", "on-target")
        assert rows["asa_s"] == "" and len(rows) >= 20
        # Every manager who worked in the period is short of the managers' target, and coloured so; one
        # with no figures in it (only in the previous period) is not judged.
        judged = page.locator("#kpi-compare td[data-kpi=calls_out]").evaluate_all(
            "tds => tds.map(td => [td.querySelector('a') !== null, td.classList.contains('off-target')])")
        assert sum(worked for worked, _ in judged) >= 2
        assert all(worked == off for worked, off in judged), judged
        no_sideways_scroll(page)
        shot(page, "kpi-targets-ru-phone")
        # Kept: the page read again shows the same targets.
        page.reload()
        page.wait_for_selector("#tile-offered.off-target")
        # The wallboard's missed callers of the day open the clients they count, for the head.
        page.goto("/wallboard")
        page.wait_for_selector("#total-missed .value a")
        day = page.request.get("/api/live/snapshot").json()["totals"]["missed_not_called_back"]["day"]
        assert page.get_attribute("#total-missed .value a", "href") == (
            f"/calls?kpi=missed_not_called_back&from={day}&to={day}")
    finally:
        for kpi, scope in (("offered", "department"), ("lost_leads", "department"), ("calls_out", "manager")):
            page.request.put("/api/kpi/targets", data={"kpi": kpi, "scope": scope, "value": None},
                             headers={"X-CSRF-Token": page.evaluate("PBX.cookie('pbxb_csrf')")})


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_kpi_reviews_and_script_per_manager_in_russian(floor: Floor, width: int) -> None:
    page = sign_in(floor, "olga", f"/kpi?from={LAB_DAY}&to={LAB_DAY}", width=width, locale="ru-RU")
    page.wait_for_selector("#kpi-speech-table tbody tr")
    assert page.inner_text("#kpi-speech h2") == translated(page, "Reviews and the sales script")
    figures = page.request.get(f"/api/kpi?from={LAB_DAY}&to={LAB_DAY}").json()
    reviews = page.request.get(f"/api/review/summary?from={LAB_DAY}&to={LAB_DAY}").json()["items"]
    by_manager = {r["manager"]: r["figures"] for r in figures["comparison"]}
    checked = by_manager[None]["speech_calls"]["value"] or 0
    # Nothing checked: a note in the reader's language, and "not checked" rather than 0 % as if measured.
    note = ("No call in this period has been checked against a checklist yet: "
            "the script figures appear once calls are transcribed and checked.")
    assert page.is_visible("#kpi-speech-note") == (checked == 0)
    if checked == 0:
        assert page.inner_text("#kpi-speech-note") == translated(page, note)
    rows = page.locator("#kpi-speech-table tbody tr")
    managers = [m for m in by_manager if m is not None]
    shown = rows.evaluate_all("trs => trs.map(tr => tr.dataset.manager)")
    assert sorted(m for m in shown if m) == sorted(set(managers) | {r["manager"] for r in reviews})
    assert shown[-1] == "" and len(shown) >= 3
    reviewed = {r["manager"]: r for r in reviews}
    for manager in managers:
        row = page.locator(f"#kpi-speech-table tr[data-manager='{manager}']")
        adherence = row.locator("td[data-kpi=script_adherence]")
        if not by_manager[manager]["speech_calls"]["value"]:
            assert adherence.inner_text() == translated(page, "not checked")
        else:
            href = adherence.locator("a").get_attribute("href")
            assert href == f"/calls?kpi=speech_calls&from={LAB_DAY}&to={LAB_DAY}&manager={manager}"
            value = by_manager[manager]["script_adherence"]["value"]
            assert page.evaluate("(v) => PBX.fmtPercent(v)", value) in adherence.inner_text()
        # Reviews lead to the journal's reviewed calls of that manager, over the same days.
        cell = row.locator("td[data-kpi=reviewed]")
        if reviewed.get(manager, {}).get("reviewed"):
            assert cell.locator("a").get_attribute("href") == (
                f"/calls?from={LAB_DAY}&to={LAB_DAY}&reviewed=1&manager={manager}")
            assert cell.inner_text() == str(reviewed[manager]["reviewed"])
        else:
            assert cell.inner_text() == translated(page, "none")
    if width == PHONE:
        # Each manager a card of labelled lines: the label is the column's name, in Russian.
        label = page.evaluate("""() => getComputedStyle(
            document.querySelector('#kpi-speech-table td[data-kpi=script_adherence]'), '::before').content""")
        assert label == '"' + translated(page, "Script adherence") + '"'
        assert not page.is_visible("#kpi-speech-table thead")
    else:
        # textContent: the grid's headings are set in capitals by its style.
        heads = page.locator("#kpi-speech-table thead th").evaluate_all("ths => ths.map(th => th.textContent)")
        assert heads[1:] == [translated(page, h) for h in (
            "Reviewed calls", "Average score", "Script adherence", "Calls with a stop phrase", "Manager's talk share")]
    no_sideways_scroll(page)
    shot(page, f"kpi-speech-ru-{width}")
