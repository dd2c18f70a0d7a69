"""Checklists in Chromium: the head writes a checklist on its page (a refused field is marked and
nothing is lost), the past calls are re-checked while the page follows the progress, and the call's
player shows the item said as passed (a click plays from where it was said) and the other as failed;
both pages fit a 390 px phone. The checklist is deleted from its page at the end."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from pbxbridge.analytics.store import delete_checklist, next_queued_job, run_recheck
from pbxbridge.analytics.tables import AnalysisJob
from tests.e2e.browser import DESKTOP, PHONE, Floor, sign_in

NAME = "Скрипт входящего"
SAID = "Пообещал обслужить"  # «ваш звонок будет обслужен» is said in the transcribed call
NEVER = "Предложил скидку"
AUDIO = "document.getElementById('audio')"
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


def _daemon(floor: Floor) -> Any:
    daemon = floor.daemon.daemon
    assert daemon is not None and daemon.session_factory is not None
    return daemon


def _recheck(floor: Floor) -> None:
    """What the analytics worker does with the queued re-check (the floor runs no worker of its own)."""
    daemon = _daemon(floor)

    async def run() -> None:
        async with daemon.session_factory() as session:
            job_id = await next_queued_job(session)
        assert job_id is not None, "saving the checklist queued no re-check"
        await run_recheck(daemon.session_factory, job_id, turn=daemon.database_turn)

    floor.daemon.run(run(), 60)


def _forget(floor: Floor, jobs_before: list[int]) -> None:
    """The floor as before: no checklist of this test, no re-check job of it."""
    daemon = _daemon(floor)

    async def run() -> None:
        async with daemon.database_turn(), daemon.session_factory() as session, session.begin():
            await delete_checklist(session, NAME)
            await session.execute(delete(AnalysisJob).where(AnalysisJob.id.not_in(jobs_before or [0])))

    floor.daemon.run(run(), 30)


def _jobs(floor: Floor) -> list[int]:
    daemon = _daemon(floor)

    async def run() -> list[int]:
        async with daemon.session_factory() as session:
            return list((await session.scalars(select(AnalysisJob.id))).all())

    return floor.daemon.run(run(), 30)


def _fill_item(page: Any, n: int, title: str, phrases: str) -> None:
    item = page.locator(".checklist-item").nth(n)
    item.locator("[name=title]").fill(title)
    item.locator("[name=phrases]").fill(phrases)


def test_the_head_writes_a_checklist_and_the_player_shows_it_checked(floor: Floor) -> None:
    jobs_before = _jobs(floor)
    try:
        head = sign_in(floor, "olga", "/checklists", width=DESKTOP, locale="ru-RU")
        head.click("#new-checklist")
        head.fill("#checklist-form [name=name]", NAME)
        _fill_item(head, 0, SAID, "ваш звонок обслужить")
        head.click("#add-item")
        # The second item's phrases left empty: refused, the field marked, what was typed kept.
        head.locator(".checklist-item").nth(1).locator("[name=title]").fill(NEVER)
        head.click("#checklist-save")
        head.locator(".checklist-item").nth(1).locator("[name=phrases][aria-invalid=true]").wait_for()
        assert head.locator("[aria-invalid=true]").count() == 1
        # Said in words, not as the API's field path.
        assert "items[" not in head.locator(".field-problems").inner_text()
        assert head.locator(".checklist-item").nth(0).locator("[name=phrases]").input_value() == "ваш звонок обслужить"
        assert not head.locator(f".checklist-card[data-name='{NAME}']").count()

        head.locator(".checklist-item").nth(1).locator("[name=phrases]").fill("скидка\nдисконт")
        head.click("#checklist-save")
        head.wait_for_selector(f".checklist-card[data-name='{NAME}']")
        head.wait_for_selector("#recheck:not([hidden])")
        _recheck(floor)
        # The page follows the re-check until it is done.
        head.wait_for_selector("#recheck[data-status=done]")

        call_id = floor.data.ivan_call_id
        head.goto(f"/calls/{call_id}")
        head.wait_for_function(f"{AUDIO}?.readyState >= 1")
        checklist = head.locator(f".script-checklist[data-checklist='{NAME}']")
        checklist.wait_for()
        passed = checklist.locator(".script-item.passed")
        failed = checklist.locator(".script-item.failed")
        assert passed.count() == 1 and failed.count() == 1
        assert passed.locator(".item-title").inner_text() == SAID
        assert failed.locator(".item-title").inner_text() == NEVER
        assert failed.locator(".item-reason").inner_text().strip()
        # Where the transcript has «ваш звонок»: the moment the item's click must play from.
        said_at = float(head.evaluate("""() => {
            const words = Array.from(document.querySelectorAll('#transcript .word'));
            const i = words.findIndex((w, k) => /^ваш/i.test(w.textContent.trim())
              && words[k + 1] && /^звонок/i.test(words[k + 1].textContent.trim()));
            return i < 0 ? -1 : Number(words[i].dataset.start);
        }"""))
        assert said_at >= 0, "the transcript has no «ваш звонок»"
        passed.locator("button.item-row").click()
        head.wait_for_function(f"Math.abs({AUDIO}.currentTime - {said_at}) <= 1.5")
        # One channel: no figures, and the page says why.
        assert head.locator("#script-one-channel").is_visible()

        # A phone: the script below the transcript, nothing wider than the screen.
        phone = sign_in(floor, "olga", f"/calls/{call_id}", width=PHONE, locale="ru-RU")
        phone.locator(f".script-checklist[data-checklist='{NAME}']").wait_for()
        assert phone.evaluate(NO_OVERFLOW)
        below = phone.evaluate("""() => document.getElementById('script').getBoundingClientRect().top
            >= document.getElementById('transcript').getBoundingClientRect().bottom""")
        assert below
        phone.goto("/checklists")
        phone.locator(f".checklist-card[data-name='{NAME}'] .edit").click()
        phone.wait_for_selector("#checklist-form .checklist-item")
        assert phone.evaluate(NO_OVERFLOW)

        # Deleted from its page: gone from the list and from the call's player.
        head.goto("/checklists")
        head.once("dialog", lambda dialog: dialog.accept())
        head.locator(f".checklist-card[data-name='{NAME}'] .delete").click()
        head.wait_for_selector(f".checklist-card[data-name='{NAME}']", state="detached")
        head.goto(f"/calls/{call_id}")
        head.wait_for_selector("#script-title")
        assert head.locator(f".script-checklist[data-checklist='{NAME}']").count() == 0
    finally:
        _forget(floor, jobs_before)
