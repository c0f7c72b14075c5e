"""Appointments' hottest reads, straight on psycopg (`core.reads`): the tenant filter is in every statement,
on every table it reads (tests/test_tenancy_core.py shows each). An appointment with its patient's,
practitioner's and location's summaries (`AppointmentDetailResponse`) is read here and only here, whoever
answers with it: today's list, the upcoming ones, and a booking (inside its transaction)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import DictRow
from sqlalchemy import ARRAY, DateTime, Select, String, any_, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from core.database import TENANT_PARAMETER
from core.reads import TenantRead, TenantReads
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.practitioners.schemas import display_name
from domain.scheduling.models import Appointment, Location
from domain.scheduling.repository import ACTIVE, AppointmentRepository, local_date
from domain.scheduling.schemas import AppointmentResponse
from domain.tenants.models import Tenant

APPOINTMENT = TenantRead.by_id(Appointment.__table__, AppointmentResponse)  # type: ignore[arg-type]

_TENANT = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
_NOW = bindparam("now", type_=DateTime(timezone=True))
_A, _P, _D, _L = (model.__table__.c for model in (Appointment, Patient, Practitioner, Location))  # type: ignore[attr-defined]
_T = Tenant.__table__.c  # type: ignore[attr-defined]
# Two instants on the same local day, anywhere, are less than a (DST-lengthened) day apart: the indexed
# prefilter on `start_time` before the exact local-day test.
_DAY = timedelta(hours=25)
# An appointment's zone: its location's, else the tenant's (else UTC, as `tenant_timezone`).
_ZONE = func.coalesce(
    _L.timezone,
    select(_T.timezone).where(_T.id == _TENANT).scalar_subquery(),
    literal("UTC"),
)
_SUMMARIES = [
    _P.id.label("patient__id"),
    _P.mrn.label("patient__mrn"),
    _P.first_name.label("patient__first_name"),
    _P.last_name.label("patient__last_name"),
    _D.id.label("practitioner__id"),
    _D.first_name.label("practitioner__first_name"),
    _D.last_name.label("practitioner__last_name"),
    _D.speciality.label("practitioner__speciality"),
    _L.id.label("location__id"),
    _L.name.label("location__name"),
    _L.timezone.label("location__timezone"),
]


# An appointment with its patient's, practitioner's and location's summary columns (each joined within the
# tenant): the shape of `AppointmentDetailResponse`, read one way wherever it is answered.
_DETAILS = select(*(_A[name] for name in AppointmentResponse.model_fields), *_SUMMARIES).select_from(
    Appointment.__table__.outerjoin(  # type: ignore[attr-defined]
        Patient.__table__, (_P.id == _A.patient_id) & (_P.tenant_id == _TENANT)
    )
    .outerjoin(Practitioner.__table__, (_D.id == _A.practitioner_id) & (_D.tenant_id == _TENANT))
    .outerjoin(Location.__table__, (_L.id == _A.location_id) & (_L.tenant_id == _TENANT))
)
_UUID = PG_UUID(as_uuid=True)


def _today(*, practitioner: bool, location: bool, status: bool) -> TenantRead:
    """One shape of GET /appointments/today: the appointments on their zone's local today (at `:now`), with
    their summaries, earliest first."""
    stmt: Select[Any] = _DETAILS.where(
        _A.tenant_id == _TENANT,
        _A.start_time > bindparam("since", type_=DateTime(timezone=True)),
        _A.start_time < bindparam("until", type_=DateTime(timezone=True)),
        local_date(_A.start_time, _ZONE) == local_date(_NOW, _ZONE),
    )
    if practitioner:
        stmt = stmt.where(_A.practitioner_id == bindparam("practitioner_id", type_=_UUID))
    if location:
        stmt = stmt.where(_A.location_id == bindparam("location_id", type_=_UUID))
    if status:
        stmt = stmt.where(_A.status == bindparam("status"))
    return TenantRead.of(stmt.order_by(_A.start_time, _A.id))


def _upcoming(*, patient: bool, practitioner: bool) -> TenantRead:
    """One shape of GET /appointments/upcoming: the active appointments from `:now` on, with their
    summaries, soonest first, at most `:limit`."""
    stmt: Select[Any] = _DETAILS.where(
        _A.tenant_id == _TENANT,
        _A.start_time >= _NOW,
        _A.status == any_(bindparam("active", value=ACTIVE, type_=ARRAY(String()))),
    )
    if patient:
        stmt = stmt.where(_A.patient_id == bindparam("patient_id", type_=_UUID))
    if practitioner:
        stmt = stmt.where(_A.practitioner_id == bindparam("practitioner_id", type_=_UUID))
    return TenantRead.of(stmt.order_by(_A.start_time, _A.id).limit(bindparam("limit")))


TODAY = {
    shape: _today(practitioner=shape[0], location=shape[1], status=shape[2])
    for shape in itertools.product((False, True), repeat=3)
}


UPCOMING = {
    shape: _upcoming(patient=shape[0], practitioner=shape[1])
    for shape in itertools.product((False, True), repeat=2)
}
APPOINTMENT_DETAILS = TenantRead.of(
    _DETAILS.where(_A.id == bindparam("record_id", type_=_UUID), _A.tenant_id == _TENANT)
)


async def appointment(reads: TenantReads, appointment_id: uuid.UUID) -> DictRow:
    """One appointment of the tenant's (NotFound otherwise)."""
    return await reads.one_or_404(APPOINTMENT, AppointmentRepository.label, record_id=appointment_id)


async def todays_appointments(
    reads: TenantReads,
    *,
    practitioner_id: uuid.UUID | None,
    location_id: uuid.UUID | None,
    status: str | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The appointments on the clinic's local today (each location's time zone, else the tenant's), with
    patient, practitioner and location summaries (`AppointmentDetailResponse`'s fields), in one round trip."""
    now = now or datetime.now(UTC)
    params: dict[str, Any] = {"now": now, "since": now - _DAY, "until": now + _DAY}
    if practitioner_id is not None:
        params["practitioner_id"] = practitioner_id
    if location_id is not None:
        params["location_id"] = location_id
    if status is not None:
        params["status"] = status
    read = TODAY[(practitioner_id is not None, location_id is not None, status is not None)]
    return [_with_summaries(row) for row in await reads.all(read, **params)]


async def appointment_details(reads: TenantReads, appointment_id: uuid.UUID) -> dict[str, Any]:
    """One appointment of the tenant's with its summaries (NotFound otherwise): what a booking answers with,
    read inside its transaction (`TenantReads.within`)."""
    row = await reads.one_or_404(APPOINTMENT_DETAILS, AppointmentRepository.label, record_id=appointment_id)
    return _with_summaries(row)


async def upcoming_appointments(
    reads: TenantReads,
    *,
    limit: int,
    patient_id: uuid.UUID | None,
    practitioner_id: uuid.UUID | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The next active appointments from `now` on, soonest first, with their summaries, in one round trip."""
    params: dict[str, Any] = {"now": now or datetime.now(UTC), "limit": limit}
    if patient_id is not None:
        params["patient_id"] = patient_id
    if practitioner_id is not None:
        params["practitioner_id"] = practitioner_id
    read = UPCOMING[(patient_id is not None, practitioner_id is not None)]
    return [_with_summaries(row) for row in await reads.all(read, **params)]


def _with_summaries(row: DictRow) -> dict[str, Any]:
    out = {name: row[name] for name in AppointmentResponse.model_fields}
    out["patient"] = (
        None
        if row["patient__id"] is None
        else {
            "id": row["patient__id"],
            "mrn": row["patient__mrn"],
            "name": f"{row['patient__first_name']} {row['patient__last_name']}",
        }
    )
    out["practitioner"] = (
        None
        if row["practitioner__id"] is None
        else {
            "id": row["practitioner__id"],
            "name": display_name(row["practitioner__first_name"], row["practitioner__last_name"]),
            "speciality": row["practitioner__speciality"],
        }
    )
    out["location"] = (
        None
        if row["location__id"] is None
        else {"id": row["location__id"], "name": row["location__name"], "timezone": row["location__timezone"]}
    )
    return out
