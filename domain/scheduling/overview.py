"""What the front desk reads about appointments: the dashboard counts.

Read-only: nothing here changes an appointment or talks to Temporal. The lists that embed patient,
practitioner and location summaries (today's, the upcoming ones) are hot reads of their own, straight on
psycopg (`domain.scheduling.reads`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import AppointmentStatus
from domain.scheduling.models import Appointment
from domain.scheduling.repository import ACTIVE, AppointmentRepository, tenant_timezone
from domain.scheduling.schemas import AppointmentStats

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
