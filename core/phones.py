"""Phone normalisation: the one place that turns what people type into E.164."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, default_region: str) -> str:
    """Parse `raw` (national or international) and return it in E.164, or raise ValueError."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def digits_only(raw: str) -> str:
    """The digits of `raw` (for matching partial numbers in search)."""
    return "".join(ch for ch in raw if ch.isdigit())
