"""The head maps managers' extensions to CRM users on a phone: added through the form, shown as a
labelled card with the manager's name, changed, removed after a confirmation; nothing wider than the screen."""

from __future__ import annotations

from tests.e2e.browser import PHONE, Floor, shot, sign_in

NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"


def test_the_head_maps_an_extension_to_a_crm_user_on_a_phone(floor: Floor) -> None:
    olga = sign_in(floor, "olga", "/crm", width=PHONE)
    olga.wait_for_selector("#crm-users-page td.empty")
    olga.select_option("#crm-users-page select[name=target]", "amocrm")
    olga.fill("#crm-users-page input[name=extension]", "203")
    olga.fill("#crm-users-page input[name=user_id]", "9001")
    olga.fill("#crm-users-page input[name=name]", "Иванов")
    olga.click("#crm-users-page button[type=submit]")
    olga.wait_for_selector("#crm-users-page tr.crm-user[data-extension='203']")
    card = olga.inner_text("#crm-users-page tr.crm-user")
    assert "amoCRM" in card and "9001" in card and "Иванов" in card and "set by hand" in card
    assert "(203)" in card  # the manager by name and extension
    assert olga.locator("#crm-users-page thead").is_hidden()
    labels = olga.evaluate("[...document.querySelectorAll('#crm-users-page tr.crm-user td[data-label]')]"
                           ".map(td => getComputedStyle(td, '::before').content)")
    assert len(labels) == 6 and all(label not in ("none", '""') for label in labels), labels
    assert olga.evaluate(NO_SIDEWAYS_SCROLL)
    shot(olga, "crm-users-phone")

    olga.click("#crm-users-page tr.crm-user button:has-text('Change')")
    assert olga.input_value("#crm-users-page input[name=user_id]") == "9001"
    olga.fill("#crm-users-page input[name=user_id]", "9002")
    olga.click("#crm-users-page button[type=submit]")
    olga.wait_for_function("() => document.querySelector('#crm-users-page tr.crm-user').innerText.includes('9002')")

    olga.on("dialog", lambda dialog: dialog.accept())
    olga.click("#crm-users-page tr.crm-user button.danger")
    olga.wait_for_selector("#crm-users-page td.empty")
    olga.context.close()
