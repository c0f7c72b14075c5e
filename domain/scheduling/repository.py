"""Scheduling queries (tenant-scoped by the session): locations, time slots, appointments, local days."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, and_, cast, func, literal, select, update
from sqlalchemy.orm import aliased

from core.repository import Repository
from domain.enums import ACTIVE_APPOINTMENT_STATUSES, SlotStatus
from domain.scheduling.models import Appointment, Location, SlotHold, TimeSlot
from domain.tenants.models import Tenant

ACTIVE = [s.value for s in ACTIVE_APPOINTMENT_STATUSES]
# A local day lies within this much of the same UTC day: prefilters on indexed UTC columns first.
_MAX_UTC_OFFSET = timedelta(hours=15)


async def tenant_timezone(session: Any, tenant_id: uuid.UUID) -> str:
    """The tenant's time zone: the fallback for locations and appointments without one."""
    tenant = await session.get(Tenant, tenant_id)
    return tenant.timezone if tenant is not None else "UTC"


def local_date(start_column: Any, timezone_expr: Any) -> ColumnElement[date]:
    """The calendar date of `start_column` in `timezone_expr`'s local time."""
    return cast(func.timezone(timezone_expr, start_column), Date)


def utc_window(start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    """Conditions on `Appointment.start_time` wide enough to contain local days `start`..`end` anywhere."""
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(Appointment.start_time >= datetime.combine(start, time(), UTC) - _MAX_UTC_OFFSET)
    if end is not None:
        day_after = datetime.combine(end + timedelta(days=1), time(), UTC)
        conditions.append(Appointment.start_time < day_after + _MAX_UTC_OFFSET)
    return conditions


class LocationRepository(Repository[Location]):
    """Queries over locations."""

    model = Location
    label = "Location"

    def filtered(self, *, is_active: bool | None = None) -> Select[Location]:
        """Locations, by name."""
        stmt = self.base()
        if is_active is not None:
            stmt = stmt.where(Location.is_active.is_(is_active))
        return stmt.order_by(Location.name, Location.id)


class TimeSlotRepository(Repository[TimeSlot]):
    """Queries over time slots, and the one statement that claims a place in one."""

    model = TimeSlot
    label = "Time slot"

    def filtered(
        self,
        *,
        practitioner_id: uuid.UUID | None = None,
        location_id: uuid.UUID | None = None,
        start_from: datetime | None = None,
        start_before: datetime | None = None,
        status: SlotStatus | None = None,
        available_only: bool = False,
    ) -> Select[TimeSlot]:
        """Slots matching the filters, earliest first."""
        stmt = self.base()
        if practitioner_id is not None:
            stmt = stmt.where(TimeSlot.practitioner_id == practitioner_id)
        if location_id is not None:
            stmt = stmt.where(TimeSlot.location_id == location_id)
        if start_from is not None:
            stmt = stmt.where(TimeSlot.start_time >= start_from)
        if start_before is not None:
            stmt = stmt.where(TimeSlot.start_time < start_before)
        if status is not None:
            stmt = stmt.where(TimeSlot.status == status.value)
        if available_only:
            stmt = stmt.where(
                TimeSlot.status == SlotStatus.OPEN.value, TimeSlot.booked_count < TimeSlot.capacity
            )
        return stmt.order_by(TimeSlot.start_time, TimeSlot.id)

    async def claim_place(self, slot_id: uuid.UUID) -> TimeSlot | None:
        """Take one place in an open slot atomically; None when it is full or blocked.

        Concurrent claims queue on the row lock and re-check the condition, so a slot is never
        booked past its capacity (the CHECK constraint backs this up).
        """
        stmt = (
            update(TimeSlot)
            .where(
                TimeSlot.id == slot_id,
                TimeSlot.status == SlotStatus.OPEN.value,
                TimeSlot.booked_count < TimeSlot.capacity,
            )
            .values(booked_count=TimeSlot.booked_count + 1)
            .returning(TimeSlot)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def release_place(self, slot_id: uuid.UUID) -> None:
        """Give one place back (a cancellation, a reschedule away, a deletion)."""
        stmt = (
            update(TimeSlot)
            .where(TimeSlot.id == slot_id, TimeSlot.booked_count > 0)
            .values(booked_count=TimeSlot.booked_count - 1)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(stmt)

    def offerable(
        self,
        *,
        now: datetime,
        practitioner_ids: list[uuid.UUID] | None,
        start_from: datetime | None,
        start_before: datetime | None,
        exclude_conversation_id: uuid.UUID | None = None,
    ) -> Select[TimeSlot]:
        """Open future slots with a place left that no other live conversation is holding."""
        held = (
            select(func.count(SlotHold.id))
            .where(
                SlotHold.time_slot_id == TimeSlot.id,
                SlotHold.released_at.is_(None),
                SlotHold.expires_at > now,
            )
            .correlate(TimeSlot)
        )
        if exclude_conversation_id is not None:
            held = held.where(SlotHold.conversation_id != exclude_conversation_id)
        stmt = self.filtered(
            start_from=max(now, start_from) if start_from else now,
            start_before=start_before,
            available_only=True,
        ).where(TimeSlot.booked_count + held.scalar_subquery() < TimeSlot.capacity)
        if practitioner_ids is not None:
            stmt = stmt.where(TimeSlot.practitioner_id.in_(practitioner_ids))
        return stmt


class AppointmentRepository(Repository[Appointment]):
    """Queries over appointments."""

    model = Appointment
    label = "Appointment"

    def local_date(self, tenant_tz: str) -> ColumnElement[date]:
        """Each appointment's date in its location's time zone, else the tenant's (needs `with_location`)."""
        loc = aliased(Location, name="appointment_location")
        tz = func.coalesce(
            select(loc.timezone).where(loc.id == Appointment.location_id).scalar_subquery(),
            literal(tenant_tz),
        )
        return local_date(Appointment.start_time, tz)

    def filtered(
        self,
        *,
        tenant_tz: str,
        patient_id: uuid.UUID | None = None,
        practitioner_id: uuid.UUID | None = None,
        location_id: uuid.UUID | None = None,
        status: str | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
    ) -> Select[Appointment]:
        """Appointments matching the filters (dates are the clinic's local dates), earliest first."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(Appointment.patient_id == patient_id)
        if practitioner_id is not None:
            stmt = stmt.where(Appointment.practitioner_id == practitioner_id)
        if location_id is not None:
            stmt = stmt.where(Appointment.location_id == location_id)
        if status is not None:
            stmt = stmt.where(Appointment.status == status)
        if start_date is not None or end_date is not None:
            stmt = stmt.where(*utc_window(start_date, end_date))
            day = self.local_date(tenant_tz)
            if start_date is not None:
                stmt = stmt.where(day >= start_date)
            if end_date is not None:
                stmt = stmt.where(day <= end_date)
        return stmt.order_by(Appointment.start_time, Appointment.id)

    async def overlapping(
        self,
        *,
        practitioner_id: uuid.UUID,
        start_time: datetime,
        end_time: datetime,
        exclude_id: uuid.UUID | None = None,
    ) -> list[Appointment]:
        """The practitioner's active appointments that overlap [start_time, end_time)."""
        stmt = self.base().where(
            Appointment.practitioner_id == practitioner_id,
            Appointment.status.in_(ACTIVE),
            Appointment.start_time < end_time,
            Appointment.end_time > start_time,
        )
        if exclude_id is not None:
            stmt = stmt.where(Appointment.id != exclude_id)
        return list((await self.session.scalars(stmt.order_by(Appointment.start_time))).all())

    async def in_slot(self, slot_id: uuid.UUID) -> list[Appointment]:
        """The active appointments booked into a slot."""
        stmt = self.base().where(Appointment.time_slot_id == slot_id, Appointment.status.in_(ACTIVE))
        return list((await self.session.scalars(stmt.order_by(Appointment.created_at))).all())

    async def counts(self, stmt: Select[Appointment], column: Any) -> dict[str, int]:
        """Counts of `stmt`'s appointments grouped by `column`."""
        sub = stmt.order_by(None).subquery()
        grouped = select(sub.c[column.key], func.count()).group_by(sub.c[column.key])
        return {
            str(k) if k is not None else "unspecified": int(n) for k, n in await self.session.execute(grouped)
        }

    async def count_where(self, stmt: Select[Appointment], *conditions: ColumnElement[bool]) -> int:
        """How many of `stmt`'s appointments also meet `conditions`."""
        sub = stmt.where(and_(True, *conditions)).order_by(None).subquery()
        return int(await self.session.scalar(select(func.count()).select_from(sub)) or 0)
