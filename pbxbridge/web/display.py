"""How a phone number reads to a person: +7 (495) 123-45-67 at home, +49 30 1234567 abroad."""

from __future__ import annotations

import functools

import phonenumbers


@functools.lru_cache(maxsize=8192)
def phone_display(number: str | None, region: str = "RU") -> str:
    """A stored number (E.164, or an extension) as people in ``region`` write it.

    A number of the default region keeps its national grouping with the country code in front
    of it instead of the trunk prefix ("+7 (495) 123-45-67", not "8 (495) 123-45-67": a manager
    on a mobile dials it as it stands); any other number is in international format; an
    extension or anything phonenumbers cannot read is shown as stored.
    """
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed) or len(phonenumbers.national_significant_number(parsed)) < 7:
        return number
    if phonenumbers.region_code_for_number(parsed) != region:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    if prefix and national.startswith(prefix):
        national = national[len(prefix):].lstrip()
    return f"+{parsed.country_code} {national}"
