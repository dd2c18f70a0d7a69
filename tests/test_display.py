"""Phone numbers as a Russian sales department writes them."""

from __future__ import annotations

import pytest

from pbxbridge.web.display import phone_display


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("+74951234567", "+7 (495) 123-45-67"),  # Moscow landline
        ("+79161110001", "+7 (916) 111-00-01"),  # mobile
        ("+4930123456", "+49 30 123456"),  # abroad: international format
        ("101", "101"),  # an extension stays as it is
        ("", ""),
        ("not a number", "not a number"),
    ],
)
def test_numbers_read_the_russian_way(stored: str, shown: str) -> None:
    assert phone_display(stored, "RU") == shown


def test_the_default_region_decides_what_is_abroad() -> None:
    assert phone_display("+74951234567", "DE") == "+7 495 123-45-67"
