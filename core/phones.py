"""Phone normalisation: the one place that turns what people type into E.164."""

from __future__ import annotations

import phonenumbers

# The region a number without a country code is read in: the process's `PRM_DEFAULT_PHONE_REGION`, set by
# whoever builds the process from its settings (the API's app factory, the worker, the CLI).
_default_region = "US"


def set_default_region(region: str) -> None:
    """Read numbers without a country code in `region` from now on (called once, from the settings)."""
    global _default_region
    _default_region = region


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Parse `raw` (national or international, national ones in `default_region`, else the process's)
    and return it in E.164, or raise ValueError."""
    try:
        parsed = phonenumbers.parse(raw, default_region or _default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def digits_only(raw: str) -> str:
    """The digits of `raw` (for matching partial numbers in search)."""
    return "".join(ch for ch in raw if ch.isdigit())
