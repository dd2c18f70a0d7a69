"""Call review in Chromium: the head clicks the waveform at a moment and comments there, tags the
call and scores it on the checklist; the manager whose call it is, on a phone, sees the comment's
mark on the waveform, and when the player reaches that moment the comment is shown there."""

from __future__ import annotations

from typing import Any

from tests.e2e.browser import DESKTOP, PHONE, Floor, shot, sign_in

AUDIO = "document.getElementById('audio')"
COMMENT = "Здесь надо было назвать цену"


def _current_time(page: Any) -> float:
    return float(page.evaluate(f"{AUDIO}.currentTime"))


def test_the_head_comments_at_a_moment_and_the_manager_sees_it_there(floor: Floor) -> None:
    call_id = floor.data.ivan_call_id
    head = sign_in(floor, "olga", f"/calls/{call_id}", width=DESKTOP, locale="ru-RU")
    head.wait_for_function(f"{AUDIO}?.readyState >= 1")
    head.wait_for_selector("#review-form")

    # The head writes the shared lists once, then they are offered on every call.
    head.click(".review-setup summary")
    head.fill("#setup-tags", "Возражение по цене\nНет приветствия")
    head.fill("#setup-checklist", "Поздоровался и представился\nНазвал цену")
    head.click("#setup-save")
    head.wait_for_selector("#review-form .chip >> text=Нет приветствия")

    # A click on the waveform, about a third in, picks the moment to comment on.
    head.locator("#waveform").scroll_into_view_if_needed()
    box = head.locator("#waveform").bounding_box()
    assert box is not None
    head.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    head.wait_for_selector("#comment-form:not([hidden])")
    head.wait_for_function(f"{AUDIO}.currentTime > 1")
    moment = _current_time(head)
    duration = float(head.evaluate(f"{AUDIO}.duration"))
    assert 0.2 * duration < moment < 0.4 * duration
    head.fill("#comment-text", COMMENT)
    head.click("#comment-save")
    head.wait_for_selector(".review-comment")
    head.wait_for_selector("#comment-form", state="hidden")
    assert COMMENT in head.inner_text(".review-comment .text")

    head.check("#review-form .chip:has-text('Возражение по цене') input")
    head.check("#review-form .check-line:has-text('Поздоровался') input")
    head.check("#review-done")
    head.click("#review-save")
    head.wait_for_function("document.querySelector('#review-status .badge-reviewed') !== null")
    review = head.request.get(f"/api/calls/{call_id}/review").json()
    (comment,) = review["comments"]
    assert abs(comment["at_s"] - moment) < 0.05
    assert (review["tags"], review["score"], review["reviewed"]) == (["Возражение по цене"], 50, True)
    shot(head, "review-head")

    # The manager, on a phone: the review read-only, the comment's mark where it was left.
    page = sign_in(floor, "ivan", f"/calls/{call_id}", width=PHONE, locale="ru-RU")
    page.wait_for_function(f"{AUDIO}?.readyState >= 1")
    page.wait_for_selector(".comment-mark")
    assert page.locator("#review-form").count() == 0 and page.locator("#comment-form").count() == 0
    assert page.inner_text("#review-tags") == "Возражение по цене"
    assert "badge-reviewed" in page.inner_html("#review-status")
    wave = page.locator("#waveform").bounding_box()
    mark = page.locator(".comment-mark").bounding_box()
    assert wave is not None and mark is not None
    share = (mark["x"] + mark["width"] / 2 - wave["x"]) / wave["width"]
    assert abs(share - moment / duration) < 0.05, (share, moment / duration)
    assert page.is_hidden("#comment-now")

    # The comment's time in the list plays from that moment, and the player shows the comment there.
    page.click(".review-comment button.time")
    page.wait_for_function(f"{AUDIO}.currentTime >= {comment['at_s'] - 0.05}")
    page.wait_for_selector("#comment-now:not([hidden])")
    assert COMMENT in page.inner_text("#comment-now")
    assert page.locator(".review-comment.current").count() == 1
    page.evaluate(f"{AUDIO}.pause()")
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, "review-manager-phone")

    # The head takes the comment back and clears the marks: the call is as other tests expect it.
    head.click(".review-comment button.danger")
    head.wait_for_selector(".review-comment", state="detached")
    head.uncheck("#review-done")
    head.uncheck("#review-form .chip:has-text('Возражение по цене') input")
    head.click("#review-save")
    head.wait_for_function("document.querySelector('#review-status .badge-not-reviewed') !== null")
    page.context.close()
    head.context.close()
