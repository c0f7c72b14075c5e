"""FHIR search: the parameters each resource takes, turned into SQL over our tables (tenant-scoped by the
session), with `_count` / `_offset` paging in a stable order (`_lastUpdated`, then id).

A parameter may repeat (every occurrence must match: `_lastUpdated=ge2026-01-01&_lastUpdated=lt2026-02-01`)
and a token or reference may list alternatives with commas (`identifier=a|1,b|2`). An unknown parameter or
modifier is refused (400) rather than ignored, so a client never mistakes an unfiltered answer for a
filtered one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadRequest
from domain.communications.models import Communication
from domain.enums import AppointmentStatus
from domain.fhir.render import (
    FHIR_TO_APPOINTMENT_STATUS,
    LICENSE_SYSTEM,
    MRN_SYSTEM,
    PROVIDER_MESSAGE_SYSTEM,
)
from domain.patients.models import Patient, PatientIdentifier
from domain.patients.repository import full_name
from domain.practitioners.models import Practitioner, PractitionerIdentifier
from domain.scheduling.models import Appointment, AppointmentIdentifier

DEFAULT_COUNT, MAX_COUNT = 20, 100
PAGING_PARAMS = frozenset({"_count", "_offset"})
IGNORED_PARAMS = frozenset({"_format", "_pretty"})  # JSON is all this server speaks
DATE_VALUE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
DATE_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")
MAX_VALUE_LENGTH = 255

Condition = ColumnElement[bool]


@dataclass(frozen=True)
class Paging:
    """Which page of the matches to answer."""

    count: int
    offset: int


@dataclass(frozen=True)
class SearchResult:
    """One page of matching records and how many match in all."""

    records: list[Any]
    total: int
    paging: Paging


# ---- parameter values ----------------------------------------------------------------------------------


def _date_range(raw: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end) of a date search value: the value stands for the interval [start, end)."""
    prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
    value = raw[2:] if raw[:2] in DATE_PREFIXES else raw
    match = DATE_VALUE.match(value)
    if not match:
        raise BadRequest("A date parameter takes [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]].")
    parts = match.groupdict()
    try:
        year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
        if parts["hour"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            if parts["day"]:
                end = start + timedelta(days=1)
            elif parts["month"]:
                end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            else:
                end = datetime(year + 1, 1, 1, tzinfo=UTC)
        else:
            stamp = value if parts["tz"] else value + "+00:00"  # no offset: read as UTC
            start = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            end = start + (timedelta(seconds=1) if parts["second"] else timedelta(minutes=1))
    except (ValueError, OverflowError) as exc:
        raise BadRequest("A date parameter names a day or time that does not exist.") from exc
    return prefix, start, end


def date_condition(column: Any, raw: str, *, as_date: bool = False) -> Condition:
    """The condition a date search value puts on `column` (a date column when `as_date`)."""
    prefix, start, end = _date_range(raw)
    lo: datetime | date = start.date() if as_date else start
    hi: datetime | date = end.date() if as_date else end
    if as_date and hi == lo:
        hi = lo + timedelta(days=1)
    within = and_(column >= lo, column < hi)
    conditions: dict[str, Condition] = {
        "eq": within,
        "ne": not_(within),
        "gt": column >= hi,
        "sa": column >= hi,
        "ge": column >= lo,
        "lt": column < lo,
        "eb": column < lo,
        "le": column < hi,
    }
    return conditions[prefix]


def _token(raw: str) -> tuple[str | None, str | None]:
    """(system, value) of a token: `system|value`, `system|` (any value), `|value` or `value` (any system)."""
    if "|" not in raw:
        return None, raw or None
    system, value = raw.split("|", 1)
    return system or None, value or None


def _alternatives(raw: str) -> list[str]:
    values = [v for v in raw.split(",") if v]
    if not values or any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise BadRequest(f"A search value must be 1 to {MAX_VALUE_LENGTH} characters.")
    return values


def _ids(raw: str) -> list[uuid.UUID]:
    found = []
    for value in _alternatives(raw):
        try:
            found.append(uuid.UUID(value.rsplit("/", 1)[-1]))
        except ValueError:
            continue  # an id that is not ours matches nothing
    return found


def _id_condition(column: Any, raw: str) -> Condition:
    ids = _ids(raw)
    return column.in_(ids) if ids else false()


def _identifier_condition(
    raw: str, *, model: Any, owner_column: Any, owned_by: Any, own: dict[str, Any]
) -> Condition:
    """`identifier=`: our own identifiers (MRN, license number, ...) and those other systems gave."""
    options: list[Condition] = []
    for alternative in _alternatives(raw):
        system, value = _token(alternative)
        for own_system, column in own.items():
            if system in (None, own_system) and value is not None:
                options.append(column == (value.upper() if own_system == MRN_SYSTEM else value))
            elif system == own_system:
                options.append(column.is_not(None))
        if system not in own:
            conditions = [model.system == system] if system else []
            if value is not None:
                conditions.append(model.value == value)
            options.append(exists().where(owned_by == owner_column, *conditions))
    return or_(*options) if options else false()


def _name_condition(raw: str, first: Any, middle: Any, last: Any, whole: Any) -> Condition:
    """FHIR string search: a name part (or the whole name) starts with the value, in any case."""
    options = []
    for alternative in _alternatives(raw):
        q = alternative.strip().lower()
        options.append(
            or_(
                *(func.lower(c).startswith(q, autoescape=True) for c in (first, middle, last)),
                whole.startswith(q, autoescape=True),
            )
        )
    return or_(*options)


# ---- the parameters of each resource -------------------------------------------------------------------

ParameterBuilder = Callable[[str], Condition]


def _patient_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Patient.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=PatientIdentifier,
            owner_column=Patient.id,
            owned_by=PatientIdentifier.patient_id,
            own={MRN_SYSTEM: Patient.mrn},
        ),
        "name": lambda v: _name_condition(
            v, Patient.first_name, Patient.middle_name, Patient.last_name, full_name()
        ),
        "birthdate": lambda v: date_condition(Patient.date_of_birth, v, as_date=True),
        "gender": lambda v: Patient.gender.in_(_alternatives(v)),
        "_lastUpdated": lambda v: date_condition(Patient.updated_at, v),
    }


def _practitioner_parameters() -> dict[str, ParameterBuilder]:
    whole = func.lower(Practitioner.first_name + " " + Practitioner.last_name)
    return {
        "_id": lambda v: _id_condition(Practitioner.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=PractitionerIdentifier,
            owner_column=Practitioner.id,
            owned_by=PractitionerIdentifier.practitioner_id,
            own={LICENSE_SYSTEM: Practitioner.license_number},
        ),
        "name": lambda v: _name_condition(
            v, Practitioner.first_name, Practitioner.middle_name, Practitioner.last_name, whole
        ),
        "_lastUpdated": lambda v: date_condition(Practitioner.updated_at, v),
    }


def _appointment_status(raw: str) -> Condition:
    wanted: set[AppointmentStatus] = set()
    for value in _alternatives(raw):
        if value not in FHIR_TO_APPOINTMENT_STATUS:
            raise BadRequest("Unknown Appointment status.")
        wanted.add(FHIR_TO_APPOINTMENT_STATUS[value])
        if value == "booked":
            wanted.add(AppointmentStatus.CONFIRMED)
    return Appointment.status.in_([s.value for s in wanted])


def _appointment_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Appointment.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=AppointmentIdentifier,
            owner_column=Appointment.id,
            owned_by=AppointmentIdentifier.appointment_id,
            own={},
        ),
        "patient": lambda v: _id_condition(Appointment.patient_id, v),
        "practitioner": lambda v: _id_condition(Appointment.practitioner_id, v),
        "date": lambda v: date_condition(Appointment.start_time, v),
        "status": _appointment_status,
        "_lastUpdated": lambda v: date_condition(Appointment.updated_at, v),
    }


def _communication_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Communication.id, v),
        "identifier": lambda v: or_(
            *(
                Communication.provider_message_id == value
                for system, value in map(_token, _alternatives(v))
                if value is not None and system in (None, PROVIDER_MESSAGE_SYSTEM)
            ),
            false(),
        ),
        "patient": lambda v: _id_condition(Communication.patient_id, v),
        "subject": lambda v: _id_condition(Communication.patient_id, v),
        "sent": lambda v: date_condition(func.coalesce(Communication.sent_at, Communication.created_at), v),
        "_lastUpdated": lambda v: date_condition(Communication.updated_at, v),
    }


@dataclass(frozen=True)
class SearchableType:
    """A resource type this server searches: its table and its parameters."""

    model: Any
    parameters: dict[str, ParameterBuilder]


SEARCHABLE: dict[str, SearchableType] = {
    "Patient": SearchableType(Patient, _patient_parameters()),
    "Practitioner": SearchableType(Practitioner, _practitioner_parameters()),
    "Appointment": SearchableType(Appointment, _appointment_parameters()),
    "Communication": SearchableType(Communication, _communication_parameters()),
}


def _paging(params: Sequence[tuple[str, str]]) -> Paging:
    values = dict(params)
    try:
        count = int(values.get("_count", DEFAULT_COUNT))
        offset = int(values.get("_offset", 0))
    except ValueError as exc:
        raise BadRequest("_count and _offset take whole numbers.") from exc
    if count < 0 or offset < 0 or offset > 1_000_000:
        raise BadRequest("_count and _offset must be 0 or more (and _offset at most 1000000).")
    return Paging(count=min(count, MAX_COUNT), offset=offset)


def build_search(resource_type: str, params: Sequence[tuple[str, str]]) -> tuple[Select[Any], Paging]:
    """The statement matching a search (ordered by `_lastUpdated` then id) and the page asked for."""
    searchable = SEARCHABLE[resource_type]
    conditions: list[Condition] = []
    for name, value in params:
        if name in PAGING_PARAMS or name in IGNORED_PARAMS:
            continue
        if ":" in name:
            raise BadRequest(f"Search modifiers are not supported ({name.split(':', 1)[1][:20]!r}).")
        builder = searchable.parameters.get(name)
        if builder is None:
            known = ", ".join(sorted(searchable.parameters))
            raise BadRequest(f"Unknown search parameter {name[:40]!r} for {resource_type}; known: {known}.")
        if not value:
            raise BadRequest(f"The search parameter {name} needs a value.")
        conditions.append(builder(value))
    model = searchable.model
    stmt = select(model).where(*conditions).order_by(model.updated_at, model.id)
    return stmt, _paging(params)


async def run_search(session: AsyncSession, stmt: Select[Any], paging: Paging) -> SearchResult:
    """One page of `stmt` and its total number of matches."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    records: list[Any] = []
    if paging.count:
        records = list((await session.scalars(stmt.offset(paging.offset).limit(paging.count))).all())
    return SearchResult(records=records, total=total, paging=paging)
