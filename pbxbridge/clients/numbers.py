"""Clients' phone numbers in one form (E.164 with '+'), whatever way the PBX wrote them."""

from __future__ import annotations

import functools
import re

import phonenumbers

_NON_DIAL = re.compile(r"[\s\-().]")


# Parsing with phonenumbers costs a fraction of a millisecond, and the same
# numbers come back all day (a call's number is asked for several times as it is written).
@functools.lru_cache(maxsize=8192)
def normalise_number(raw: str | None, region: str = "RU") -> str | None:
    """E.164 ('+79161110001') for a real subscriber number; None for extensions and garbage.

    Russian numbers reach the PBX as 8XXXXXXXXXX (domestic), 7XXXXXXXXXX
    (carriers that drop the '+') and +7XXXXXXXXXX; all three are one client.
    """
    if raw is None:
        return None
    text = _NON_DIAL.sub("", raw.strip())
    if not text:
        return None
    if text.startswith("00"):
        # International prefix as dialled in Europe and Russia.
        text = "+" + text[2:]
    if not re.fullmatch(r"\+?\d+", text):
        return None
    candidates: list[tuple[str, str | None]] = [(text, region)]
    digits = text.lstrip("+")
    if not text.startswith("+") and len(digits) >= 11:
        # Carriers often drop the '+': 7916..., 375..., 49....
        candidates.append(("+" + digits, None))
    for candidate, candidate_region in candidates:
        try:
            parsed = phonenumbers.parse(candidate, candidate_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None
