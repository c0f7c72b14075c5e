"""Schema building blocks shared by every domain: the base model and the validated field types."""

from __future__ import annotations

import functools
import json
import re
import types
from datetime import UTC, date, datetime
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    WithJsonSchema,
    model_validator,
)

from core.phones import to_e164


def _phone(value: str) -> str:
    """A phone number valid where it is dialled (libphonenumber), in any common notation."""
    return to_e164(value)


def without_null(schema: dict[str, Any]) -> None:
    """Drop `null` from a field's JSON Schema (pydantic writes an optional field as `anyOf [T, null]`)."""
    kept = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if len(kept) == 1:
        schema.update(kept[0])
    elif kept:
        schema["anyOf"] = kept
    if schema.get("enum"):
        schema["enum"] = [value for value in schema["enum"] if value is not None]


NotNull = Field(json_schema_extra=without_null)
"""`name: Annotated[str | None, NotNull] = None`: a PATCH field that may be omitted but not cleared; its
schema shows the type alone (no `null`), and a `null` sent is a 422 (where the update is applied, or by a
validator)."""

PhoneNumber = Annotated[str, AfterValidator(_phone)]
"""A phone number in any common notation, stored in E.164."""

Email = Annotated[
    EmailStr,
    WithJsonSchema,
    AfterValidator(lambda v: v.lower()),
    # `email-validator`'s checks beyond the format (stated for the contract, `api.content_rules`).
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "x-rules": [
                "An address whose domain can receive mail: not a special-use or reserved name such as "
                "`.test`, `.local`, `.invalid` or `localhost`."
            ],
        }
    ),
]
"""An email address, validated and lower-cased."""


# Dates the service accepts: far wider than any clinic needs, and far inside what Python, PostgreSQL and
# the arithmetic on them (a day after, a time-zone shift) can hold; `9999-12-31` is refused, not a 500.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)


DATE_RANGE_RULE = f"A date between {EARLIEST_DAY} and {LATEST_DAY} (a date-time's UTC date)."


def _in_range(value: date | datetime, what: str = "a date") -> date | datetime:
    """A date between 1900-01-01 and 2199-12-31 (a date-time's UTC date)."""
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


# What the OpenAPI's `format: date` and `format: date-time` (RFC 3339) take, as text. Pydantic alone would
# also read a number, or a string of digits, as seconds since 1970 (`start_date=0` is 1970-01-01).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")


def _iso_text(value: Any, kind: type[date]) -> Any:
    """`value` when it is a date (or date-time) or its ISO 8601 text; anything else is refused here."""
    if isinstance(value, kind):
        return value
    pattern, shape = (
        (_ISO_DATE_TIME, "YYYY-MM-DDThh:mm:ssZ") if kind is datetime else (_ISO_DATE, "YYYY-MM-DD")
    )
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise ValueError(f"must be written as ISO 8601 text ({shape})")
    return value


def _iso_date(value: Any) -> Any:
    return _iso_text(value, date)


def _iso_date_time(value: Any) -> Any:
    return _iso_text(value, datetime)


Day = Annotated[date, BeforeValidator(_iso_date), AfterValidator(_in_range)]
"""A date written `YYYY-MM-DD`, between 1900-01-01 and 2199-12-31 (query parameters; request bodies check
every date)."""

Instant = Annotated[datetime, BeforeValidator(_iso_date_time), AfterValidator(_in_range)]
"""An ISO 8601 date-time whose UTC date falls between 1900-01-01 and 2199-12-31."""

AwareInstant = Annotated[AwareDatetime, BeforeValidator(_iso_date_time), AfterValidator(_in_range)]
"""An `Instant` with its UTC offset."""


def temporal_kind(annotation: Any) -> type[date] | None:
    """`datetime` or `date` when a field's type is one of them (optional or annotated), else None."""
    kind = json_kind(annotation)
    return kind if kind in (datetime, date) else None  # type: ignore[return-value]


_JSON_KINDS = (bool, int, float, datetime, date)


def _unwrapped(annotation: Any) -> Any:
    return _unwrapped(get_args(annotation)[0]) if get_origin(annotation) is Annotated else annotation


def json_kind(annotation: Any) -> type | None:
    """The one scalar type of `_JSON_KINDS` a field holds (optional or annotated), else None."""
    if annotation in _JSON_KINDS:
        return annotation  # type: ignore[no-any-return]
    origin = get_origin(annotation)
    if origin is Annotated:
        return json_kind(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if _unwrapped(arg) is not type(None)]
        kinds = {json_kind(arg) for arg in args}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def _as_json_says(value: Any, kind: type) -> Any:
    """`value` when it is of the JSON type its field's schema names; pydantic alone would also take `0` for
    `false`, `"5"` for 5 and a number of seconds for a date."""
    if kind in (datetime, date):
        return _iso_text(value, kind)
    if kind is bool and not isinstance(value, bool):
        raise ValueError("must be true or false")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be an integer")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a number")
    return value


MAX_FREE_JSON_BYTES = 16 * 1024


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """At most 16 KiB of JSON."""
    if len(json.dumps(value, default=str)) > MAX_FREE_JSON_BYTES:
        raise ValueError(f"at most {MAX_FREE_JSON_BYTES} bytes of JSON")
    return value


FreeJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""Free-form JSON a client attaches (`meta_data`, `context`, ...): at most 16 KiB (depth, NUL, NaN and
Infinity are refused for every body before it is parsed)."""


class JsonTyped(BaseModel):
    """A model whose fields take the JSON type their schema names (`_json_types`): every request body's,
    nested shapes too."""

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        """A field takes the JSON type its schema names: a boolean `true`/`false`, a number, a date as ISO
        8601 text (not `0`, `"5"` or a number of seconds, which pydantic's lax mode reads). A value of
        another type is swapped for one no type takes, so pydantic refuses it at the field, in its words."""
        if not isinstance(data, dict):
            return data
        checked = data
        for key, kind in _json_kinds(cls).items():
            value = data.get(key)
            if value is not None:
                try:
                    _as_json_says(value, kind)
                except ValueError:
                    checked = {**checked, key: _NOT_OF_ITS_TYPE}
        return checked


class _NotOfItsType:
    """What replaces a value of the wrong JSON type: nothing validates it (and it tells nothing of it)."""

    def __repr__(self) -> str:
        return "<a value of another JSON type>"


_NOT_OF_ITS_TYPE = _NotOfItsType()


@functools.cache
def _json_kinds(model: type[BaseModel]) -> dict[str, type]:
    """The JSON scalar type of each field of `model` that has one, by the name a body gives it."""
    kinds = {}
    for name, field in model.model_fields.items():
        kind = json_kind(field.annotation)
        if kind is not None:
            kinds[field.alias or name] = kind
    return kinds


class RequestModel(JsonTyped):
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
