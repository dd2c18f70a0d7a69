"""Clients' numbers in every form the PBX writes them come out as one E.164 number."""

from __future__ import annotations

import pytest

from pbxbridge.clients.numbers import normalise_number


@pytest.mark.parametrize(
    "raw",
    ["89161110001", "+7 916 111-00-01", "79161110001", "+79161110001", "8 (916) 111-00-01", "9161110001"],
)
def test_russian_mobile_forms(raw: str) -> None:
    assert normalise_number(raw, "RU") == "+79161110001"


def test_moscow_landline_did() -> None:
    assert normalise_number("74951234567", "RU") == "+74951234567"
    assert normalise_number("84951234567", "RU") == "+74951234567"


@pytest.mark.parametrize("raw", ["201", "2050", "*97", "s", "anonymous", "", "   ", "7916111", "abc123", None])
def test_extensions_and_garbage_are_not_client_numbers(raw: str | None) -> None:
    assert normalise_number(raw, "RU") is None


def test_foreign_numbers() -> None:
    # International prefix 00 and a carrier that dropped the '+'.
    assert normalise_number("00375291234567", "RU") == "+375291234567"
    assert normalise_number("375291234567", "RU") == "+375291234567"
    assert normalise_number("+49 30 1234567", "RU") == "+49301234567"


def test_default_region_decides_national_numbers() -> None:
    assert normalise_number("030 1234567", "DE") == "+49301234567"
    assert normalise_number("030 1234567", "RU") is None
