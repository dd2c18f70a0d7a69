"""Every page in Russian, on a desktop and a phone: no English word of the interface left on it,
nothing wider than the phone's screen; dates, durations and plural forms as Russian writes them;
the header's RU / EN switches a user's language and keeps it."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from babel.messages.catalog import Catalog

from pbxbridge.web.catalog_tools import read_catalog
from tests.e2e.browser import DESKTOP, PHONE, Floor, new_context, shot, sign_in

RU = "ru-RU"
# The text appears once the page's script has drawn it; a page that is still loading says so.
SETTLE_JS = """() => {
  const main = document.querySelector('main');
  return main && main.innerText.trim().length > 0 && !/Loading|Загрузка/.test(main.innerText);
}"""
# What a person reads or hears: the title, the text shown, placeholders, tooltips and labels read aloud.
TEXT_JS = """() => [document.title, document.body.innerText,
  ...[...document.querySelectorAll('[placeholder], [title], [aria-label]')]
    .filter((node) => node.getClientRects().length)
    .flatMap((node) => ['placeholder', 'title', 'aria-label'].map((a) => node.getAttribute(a) || ''))].join('\\n')"""
# Elements reaching past the screen's edge that are not inside something scrolling or clipping sideways.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const node of document.querySelectorAll('body *')) {
    const box = node.getBoundingClientRect();
    if (!box.width || !box.height || (box.left >= -1 && box.right <= width + 1)) continue;
    if (getComputedStyle(node).position === 'fixed') continue;
    let parent = node.parentElement, contained = false;
    while (parent && parent !== document.body) {
      if (getComputedStyle(parent).overflowX !== 'visible') { contained = true; break; }
      parent = parent.parentElement;
    }
    if (!contained) {
      const classes = typeof node.className === 'string' ? node.className.trim().split(/\\s+/).join('.') : '';
      found.push(`${node.tagName.toLowerCase()}${node.id ? '#' + node.id : ''}${classes ? '.' + classes : ''}` +
                 ` ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return {scroll: document.documentElement.scrollWidth - window.innerWidth, found: found.slice(0, 8)};
}"""


def _words_pattern(msgid: str) -> re.Pattern[str] | None:
    """The msgid as it would show untranslated: placeholders match anything, whole words only.
    None for a message too short to tell from a name or a code (fewer than three letters)."""
    parts = re.split(r"\{\w+\}", msgid.replace("{{", "{").replace("}}", "}"))
    if sum(len(re.findall(r"[A-Za-z]", p)) for p in parts) < 3:
        return None
    body = r".+?".join(re.escape(p) for p in parts)
    return re.compile(r"(?<![A-Za-z])" + body + r"(?![A-Za-z])")


@cache
def _english_interface() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Every English message the Russian catalog says differently (KPI is KPI in both)."""
    ru: Catalog = read_catalog("ru")
    found: list[tuple[str, re.Pattern[str]]] = []
    for message in ru:
        if not message.id:
            continue
        ids = list(message.id) if isinstance(message.id, tuple | list) else [message.id]
        strings = list(message.string) if isinstance(message.string, tuple | list) else [message.string]
        for msgid in ids:
            if msgid in strings:
                continue
            pattern = _words_pattern(msgid)
            if pattern is not None:
                found.append((msgid, pattern))
    return tuple(found)


def _untranslated(text: str) -> list[str]:
    return [msgid for msgid, pattern in _english_interface() if pattern.search(text)]


def _check(page: Any, where: str, width: int) -> list[str]:
    """What is wrong with the page as shown: English left in it, things wider than a phone."""
    page.wait_for_function(SETTLE_JS)
    page.wait_for_timeout(300)  # the last answers of the page's API calls
    problems: list[str] = []
    if page.evaluate("document.documentElement.lang") != "ru":
        problems.append(f"{where}: <html lang> is not ru")
    text = page.evaluate(TEXT_JS)
    english = _untranslated(text)
    if english:
        problems.append(f"{where} at {width} px shows English: {english}")
    if width == PHONE:
        overflow = page.evaluate(OVERFLOW_JS)
        if overflow["scroll"] > 0 or overflow["found"]:
            problems.append(f"{where} at {width} px is wider than the screen by {overflow['scroll']} px: {overflow['found']}")
    return problems


def test_every_page_in_russian_on_a_desktop_and_a_phone(floor: Floor) -> None:
    data = floor.data
    pages = ["/calls", f"/calls/{data.ivan_call_id}", "/clients", f"/clients/{data.ivan_client_id}", "/kpi",
             "/wallboard", "/routing", "/audit", "/missed", "/crm", "/checklists", "/no-such-page"]
    problems: list[str] = []
    for width in (DESKTOP, PHONE):
        stranger = new_context(floor, width, RU).new_page()
        stranger.goto("/login")
        problems += _check(stranger, "/login", width)
        stranger.context.close()
        page = sign_in(floor, "olga", "/calls", width=width, locale=RU)
        for path in pages:
            page.goto(path)
            problems += _check(page, path, width)
            shot(page, f"ru{path.replace('/', '-')}-{width}")
        page.context.close()
    assert not problems, "\n".join(problems)
    # The same reading of an English page finds the interface's words: the check above can fail.
    english = sign_in(floor, "olga", "/calls", width=DESKTOP, locale="en-US")
    english.wait_for_function(SETTLE_JS)
    found = _untranslated(english.evaluate("document.body.innerText"))
    assert {"Sign out", "Call journal", "Audit log"} <= set(found), found


def test_russian_forms_of_numbers_dates_and_durations_in_the_browser(floor: Floor) -> None:
    page = sign_in(floor, "olga", "/clients", width=PHONE, locale=RU)
    page.wait_for_function(SETTLE_JS)
    got = page.evaluate("""() => ({
      calls: [1, 2, 5, 11, 21, 22, 111].map((n) => PBX.tn("{n} call", "{n} calls", n)),
      time: PBX.fmtTime("2026-12-07T11:05:09Z"),
      date: PBX.fmtDate("2026-12-07"),
      evening: PBX.fmtDate("2026-12-07T22:30:00Z"),
      clock: PBX.fmtTimeOfDay("2026-12-07T11:05:09Z"),
      durations: [45, 125, 3725].map(PBX.fmtDuration),
      big: PBX.fmtNumber(12345.5),
      share: PBX.fmtPercent(0.87),
      status: PBX.statusName("abandoned"),
    })""")
    assert got["calls"] == ["1 звонок", "2 звонка", "5 звонков", "11 звонков", "21 звонок", "22 звонка", "111 звонков"]
    # Moscow, 24-hour, dd.mm.yyyy; a day given as a date is that day; 22:30 UTC is already the 8th in Moscow.
    assert got["time"] == "07.12.2026 14:05:09"
    assert (got["date"], got["evening"], got["clock"]) == ("07.12.2026", "08.12.2026", "14:05")
    assert got["durations"] == ["45 с", "2 мин 05 с", "1 ч 02 мин 05 с"]
    assert got["big"] == "12\u00a0345,5" and got["share"] == "87\u00a0%"
    assert got["status"] == "клиент не дождался"
    english = sign_in(floor, "olga", "/clients", width=DESKTOP, locale="en-US")
    english.wait_for_function(SETTLE_JS)
    got = english.evaluate("""() => ({
      calls: [1, 2, 5, 21].map((n) => PBX.tn("{n} call", "{n} calls", n)),
      time: PBX.fmtTime("2026-12-07T11:05:09Z"),
      duration: PBX.fmtDuration(125),
    })""")
    assert got == {"calls": ["1 call", "2 calls", "5 calls", "21 calls"], "time": "7 Dec 2026, 14:05:09",
                   "duration": "2 min 05 s"}


def test_the_header_switches_a_users_language_and_keeps_it(floor: Floor) -> None:
    page = sign_in(floor, "sergey", "/wallboard", width=PHONE, locale=RU)
    try:
        assert page.evaluate("document.documentElement.lang") == "ru"
        page.click("header form.lang input[lang=en]")
        page.wait_for_url("**/wallboard")
        page.wait_for_function("document.documentElement.lang === 'en'")
        assert page.locator("header form.lang input[lang=en]").get_attribute("aria-pressed") == "true"
        assert "Sign out" in page.locator("header").inner_text()
        # Another browser with Russian settings: his own choice, English.
        again = sign_in(floor, "sergey", "/routing", width=DESKTOP, locale=RU)
        assert again.evaluate("document.documentElement.lang") == "en"
        again.click("header form.lang input[lang=ru]")
        again.wait_for_function("document.documentElement.lang === 'ru'")
        assert "Выйти" in again.locator("header").inner_text()
    finally:
        # Others sign in as sergey too: leave him following his browser.
        token = page.evaluate("PBX.cookie('pbxb_csrf')")
        page.request.post("/api/me/language", data={"language": None}, headers={"X-CSRF-Token": token})
