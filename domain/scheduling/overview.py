"""What the front desk reads about appointments: the upcoming ones, the dashboard counts.

Read-only: nothing here changes an appointment or talks to Temporal. Every list embeds patient, practitioner
and location summaries in a fixed number of queries (`with_details`). Today's list is a hot read of its own,
straight on psycopg (`domain.scheduling.reads.todays_appointments`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import AppointmentStatus
from domain.practitioners.schemas import display_name
from domain.scheduling.models import Appointment
from domain.scheduling.repository import (
    ACTIVE,
    AppointmentRepository,
    locations_by_id,
    patients_by_id,
    practitioners_by_id,
    tenant_timezone,
)
from domain.scheduling.schemas import (
    AppointmentDetailResponse,
    AppointmentStats,
    LocationSummary,
    PatientSummary,
    PractitionerSummary,
)

S = AppointmentStatus


async def appointment_stats(
    session: AsyncSession, *, start_date: date | None, end_date: date | None
) -> AppointmentStats:
    """Totals, today's and upcoming counts, and counts by status and by type."""
    repo = AppointmentRepository(session)
    tenant_tz = await tenant_timezone(session, session.info["tenant_id"])
    stmt = repo.filtered(tenant_tz=tenant_tz, start_date=start_date, end_date=end_date)
    today = datetime.now(ZoneInfo(tenant_tz)).date()
    by_status = {s.value: 0 for s in AppointmentStatus}
    by_status.update(await repo.counts(stmt, Appointment.status))
    return AppointmentStats(
        total=sum(by_status.values()),
        today=await repo.count_where(stmt, repo.local_date(tenant_tz) == today),
        upcoming=await repo.count_where(
            stmt, Appointment.start_time >= datetime.now(UTC), Appointment.status.in_(ACTIVE)
        ),
        completed=by_status[S.COMPLETED.value],
        cancelled=by_status[S.CANCELLED.value],
        no_show=by_status[S.NO_SHOW.value],
        by_status=by_status,
        by_type=await repo.counts(stmt, Appointment.appointment_type),
    )


async def upcoming_appointments(
    session: AsyncSession,
    *,
    limit: int,
    patient_id: uuid.UUID | None,
    practitioner_id: uuid.UUID | None,
) -> list[AppointmentDetailResponse]:
    """The next active appointments from now on, soonest first."""
    repo = AppointmentRepository(session)
    stmt = (
        repo.base()
        .where(Appointment.start_time >= datetime.now(UTC), Appointment.status.in_(ACTIVE))
        .order_by(Appointment.start_time, Appointment.id)
        .limit(limit)
    )
    if patient_id is not None:
        stmt = stmt.where(Appointment.patient_id == patient_id)
    if practitioner_id is not None:
        stmt = stmt.where(Appointment.practitioner_id == practitioner_id)
    return await with_details(session, list((await session.scalars(stmt)).all()))


async def with_details(session: AsyncSession, rows: list[Appointment]) -> list[AppointmentDetailResponse]:
    """Embed patient, practitioner and location summaries (three queries, whatever the number of rows)."""
    patients = await patients_by_id(session, {a.patient_id for a in rows})
    practitioners = await practitioners_by_id(session, {a.practitioner_id for a in rows})
    locations = await locations_by_id(session, {a.location_id for a in rows if a.location_id})
    out = []
    for a in rows:
        detail = AppointmentDetailResponse.model_validate(a)
        if (p := patients.get(a.patient_id)) is not None:
            detail.patient = PatientSummary(id=p.id, mrn=p.mrn, name=f"{p.first_name} {p.last_name}")
        if (d := practitioners.get(a.practitioner_id)) is not None:
            detail.practitioner = PractitionerSummary(
                id=d.id, name=display_name(d.first_name, d.last_name), speciality=d.speciality
            )
        if a.location_id and (loc := locations.get(a.location_id)) is not None:
            detail.location = LocationSummary(id=loc.id, name=loc.name, timezone=loc.timezone)
        out.append(detail)
    return out
