"""Schema building blocks shared by every domain: the base model and the validated field types."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, model_validator

from core.phones import to_e164


def _phone(value: str) -> str:
    return to_e164(value)


PhoneNumber = Annotated[str, AfterValidator(_phone)]
"""A phone number in any common notation, stored in E.164."""

Email = Annotated[EmailStr, AfterValidator(lambda v: v.lower())]
"""An email address, validated and lower-cased."""


# Dates the service accepts: far wider than any clinic needs, and far inside what Python, PostgreSQL and
# the arithmetic on them (a day after, a time-zone shift) can hold; `9999-12-31` is refused, not a 500.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def _in_range(value: date | datetime, what: str = "a date") -> date | datetime:
    if isinstance(value, datetime):
        try:
            day = (value.astimezone(UTC) if value.tzinfo else value).date()
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is in the year 10000 in UTC
            raise ValueError(f"{what} must fall between {EARLIEST_DAY} and {LATEST_DAY}") from None
    else:
        day = value
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"{what} must fall between {EARLIEST_DAY} and {LATEST_DAY}")
    return value


Day = Annotated[date, AfterValidator(_in_range)]
"""A date between 1900-01-01 and 2199-12-31 (query parameters; request bodies check every date)."""

Instant = Annotated[datetime, AfterValidator(_in_range)]
"""A date-time whose UTC date falls between 1900-01-01 and 2199-12-31."""


MAX_FREE_JSON_BYTES = 16 * 1024


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, default=str)) > MAX_FREE_JSON_BYTES:
        raise ValueError(f"at most {MAX_FREE_JSON_BYTES} bytes of JSON")
    return value


FreeJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""Free-form JSON a client attaches (`meta_data`, `context`, ...): at most 16 KiB (depth, NUL, NaN and
Infinity are refused for every body before it is parsed)."""


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields (including server-owned ones like `id`) are refused, and
    every date and date-time must fall in the range the service accepts (`EARLIEST_DAY`..`LATEST_DAY`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="after")
    def _dates_in_range(self) -> Any:
        for name, value in self:
            if isinstance(value, date):  # datetimes too
                _in_range(value, name)
        return self


class ResponseModel(BaseModel):
    """Base of responses, read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


def changes(update: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually set (`exclude_unset`)."""
    return update.model_dump(exclude_unset=True)
