"""Appointment use cases: conflict-safe booking, rescheduling, the status lifecycle, cancellation, views.

No double-booking is the database's guarantee (the exclusion constraint on a practitioner's active
appointments, the capacity check on slots); this module turns a clash into a 409 that names the
appointments in the way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock
from core.errors import Conflict, NotFound, Unprocessable
from domain.enums import AppointmentStatus, PatientStatus, SlotStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import display_name
from domain.scheduling import backfill, notifications, workflow_jobs
from domain.scheduling.models import Appointment, Location, TimeSlot
from domain.scheduling.repository import (
    ACTIVE,
    AppointmentRepository,
    LocationRepository,
    TimeSlotRepository,
    locations_by_id,
    patients_by_id,
    practitioners_by_id,
    tenant_timezone,
)
from domain.scheduling.schemas import (
    AppointmentDetailResponse,
    AppointmentDirectCreate,
    AppointmentStats,
    AppointmentUpdate,
    ConflictCheckResponse,
    ConflictingAppointment,
    LocationSummary,
    PatientSummary,
    PractitionerSummary,
)
from domain.scheduling.workflow_jobs import WorkflowGateway
from domain.schemas import changes

S = AppointmentStatus
# The lifecycle: booked -> confirmed -> checked_in -> completed; cancelled and no_show end it early.
TRANSITIONS: dict[AppointmentStatus, set[AppointmentStatus]] = {
    S.BOOKED: {S.CONFIRMED, S.CHECKED_IN, S.CANCELLED, S.NO_SHOW},
    S.CONFIRMED: {S.CHECKED_IN, S.CANCELLED, S.NO_SHOW},
    S.CHECKED_IN: {S.COMPLETED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.NO_SHOW: set(),
}
STAMPS = {
    S.CONFIRMED: "confirmed_at",
    S.CHECKED_IN: "checked_in_at",
    S.COMPLETED: "completed_at",
    S.CANCELLED: "cancelled_at",
}
OVERLAP_CONSTRAINT = "ex_appointments_practitioner_overlap"


def conflict_items(appointments: list[Appointment]) -> list[ConflictingAppointment]:
    """The reference's shape for each conflicting appointment."""
    return [
        ConflictingAppointment(
            appointment_id=a.id,
            patient_id=a.patient_id,
            status=AppointmentStatus(a.status),
            start_time=a.start_time,
            end_time=a.end_time,
        )
        for a in appointments
    ]


def _conflict(detail: str, appointments: list[Appointment]) -> Conflict:
    items = [c.model_dump(mode="json") for c in conflict_items(appointments)]
    return Conflict(detail, extra={"conflicting_appointments": items})


async def _ensure_bookable_people(
    session: AsyncSession, patient_id: uuid.UUID, practitioner_id: uuid.UUID
) -> tuple[Patient, Practitioner]:
    patient = await session.scalar(select(Patient).where(Patient.id == patient_id))
    if patient is None:
        raise NotFound("Patient not found.")
    practitioner = await PractitionerRepository(session).get_or_404(practitioner_id)
    if patient.merged_into_id is not None:
        raise Conflict(
            "This patient record was merged into another; book for the surviving record.",
            extra={"merged_into_id": str(patient.merged_into_id)},
        )
    if patient.status != PatientStatus.ACTIVE.value:
        raise Conflict("This patient record is not active.")
    if not practitioner.is_active:
        raise Conflict("This practitioner is not active.")
    return patient, practitioner


@asynccontextmanager
async def _no_overlap(
    session: AsyncSession,
    *,
    practitioner_id: uuid.UUID,
    start_time: datetime,
    end_time: datetime,
    exclude_id: uuid.UUID | None,
) -> AsyncIterator[None]:
    """Make the changes of the block in a savepoint, so an overlap becomes a 409 naming the clashes."""
    # The exclusion constraint is the guarantee. This lock only queues concurrent bookings of one
    # practitioner: without it, two inserts checking the constraint against each other can deadlock.
    await advisory_xact_lock(session, f"appointments:practitioner:{practitioner_id}")
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != OVERLAP_CONSTRAINT:
            raise
        clashes = await AppointmentRepository(session).overlapping(
            practitioner_id=practitioner_id, start_time=start_time, end_time=end_time, exclude_id=exclude_id
        )
        raise _conflict("The practitioner already has an appointment at that time.", clashes) from exc


async def _claim_slot(session: AsyncSession, slot_id: uuid.UUID) -> TimeSlot:
    """Take a place in the slot, or 409 with the appointments that fill it."""
    slots = TimeSlotRepository(session)
    await slots.get_or_404(slot_id)
    claimed = await slots.claim_place(slot_id)
    if claimed is None:
        slot = await slots.get_or_404(slot_id)
        if slot.status != SlotStatus.OPEN.value:
            raise _conflict("The time slot is blocked.", [])
        raise _conflict(
            "The time slot is fully booked.", await AppointmentRepository(session).in_slot(slot_id)
        )
    return claimed


async def book_appointment(
    session: AsyncSession, data: AppointmentDirectCreate, gateway: WorkflowGateway
) -> Appointment:
    """Book a patient into a slot or at a practitioner's free time; starts the reminders after the commit."""
    fields = data.model_dump(
        exclude={"tenant_id", "time_slot_id", "start_time", "end_time", "practitioner_id"}
    )
    appointment = await book(
        session,
        patient_id=data.patient_id,
        practitioner_id=data.practitioner_id,
        time_slot_id=data.time_slot_id,
        start_time=data.start_time,
        end_time=data.end_time,
        **{k: v for k, v in fields.items() if k != "patient_id"},
    )
    await workflow_jobs.start_appointment_workflow(session, gateway, appointment)
    return appointment


async def book(
    session: AsyncSession,
    *,
    patient_id: uuid.UUID,
    practitioner_id: uuid.UUID | None = None,
    time_slot_id: uuid.UUID | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    location_id: uuid.UUID | None = None,
    **details: object,
) -> Appointment:
    """The one conflict-safe booking path (direct, chat and waitlist bookings all come through here)."""
    slot: TimeSlot | None = None
    if time_slot_id is not None:
        slot = await TimeSlotRepository(session).get_or_404(time_slot_id)
        if practitioner_id is not None and practitioner_id != slot.practitioner_id:
            raise Unprocessable("practitioner_id does not match the time slot's practitioner.")
        if start_time is not None and (start_time != slot.start_time or end_time != slot.end_time):
            raise Unprocessable("start_time and end_time must match the time slot (or be omitted).")
        practitioner_id, start_time, end_time = slot.practitioner_id, slot.start_time, slot.end_time
        location_id = location_id or slot.location_id
    assert practitioner_id is not None and start_time is not None and end_time is not None
    await _ensure_bookable_people(session, patient_id, practitioner_id)
    if location_id is not None:
        await LocationRepository(session).get_or_404(location_id)
    if slot is not None:
        slot = await _claim_slot(session, slot.id)
    appointment = Appointment(
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        location_id=location_id,
        time_slot_id=slot.id if slot else None,
        shared_slot=bool(slot and slot.capacity > 1),
        start_time=start_time,
        end_time=end_time,
        status=AppointmentStatus.BOOKED.value,
        **details,
    )
    appointment.id = uuid.uuid4()
    appointment.workflow_id = workflow_jobs.appointment_workflow_id(appointment.id)
    async with _no_overlap(
        session, practitioner_id=practitioner_id, start_time=start_time, end_time=end_time, exclude_id=None
    ):
        session.add(appointment)
    await session.refresh(appointment)
    return appointment


async def update_appointment(
    session: AsyncSession, appointment_id: uuid.UUID, data: AppointmentUpdate, gateway: WorkflowGateway
) -> Appointment:
    """Apply a PATCH: details, a reschedule (new times or slot) and/or a status transition."""
    repo = AppointmentRepository(session)
    appointment = await repo.get_or_404(appointment_id)
    sent = changes(data)
    new_status = sent.pop("status", None)
    slot_id = sent.pop("time_slot_id", None)
    start_time, end_time = sent.pop("start_time", None), sent.pop("end_time", None)
    if sent.get("location_id") is not None:
        await LocationRepository(session).get_or_404(sent["location_id"])
    for field, value in sent.items():
        setattr(appointment, field, {} if field == "meta_data" and value is None else value)

    rescheduled = False
    if slot_id is not None or start_time is not None:
        await _reschedule(session, appointment, slot_id=slot_id, start_time=start_time, end_time=end_time)
        rescheduled = True
    if new_status is not None and new_status != appointment.status:
        if new_status == S.CANCELLED:
            return await cancel_appointment(
                session,
                appointment_id,
                notify_patient=True,
                gateway=gateway,
                reason=sent.get("cancellation_reason"),
            )
        _transition(appointment, AppointmentStatus(new_status))
        if new_status in (S.COMPLETED, S.NO_SHOW):
            workflow_jobs.finish_appointment_workflow(session, appointment)
    await repo.save(appointment)
    if rescheduled:
        await notifications.supersede_reminders(session, appointment)
        await workflow_jobs.reschedule_appointment_workflow(session, appointment)
    return appointment


def _transition(appointment: Appointment, target: AppointmentStatus) -> None:
    current = AppointmentStatus(appointment.status)
    if target not in TRANSITIONS[current]:
        raise Conflict(f"An appointment cannot go from {current.value} to {target.value}.")
    appointment.status = target.value
    if target in STAMPS:
        setattr(appointment, STAMPS[target], datetime.now(UTC))


async def _reschedule(
    session: AsyncSession,
    appointment: Appointment,
    *,
    slot_id: uuid.UUID | None,
    start_time: datetime | None,
    end_time: datetime | None,
) -> None:
    """Move the appointment to a new slot or time; the old slot's place is given back."""
    if appointment.status not in (S.BOOKED.value, S.CONFIRMED.value):
        raise Conflict(f"A {appointment.status} appointment cannot be rescheduled.")
    slots = TimeSlotRepository(session)
    old_slot_id = appointment.time_slot_id
    slot: TimeSlot | None = None
    if slot_id is not None:
        if slot_id == old_slot_id:
            return
        slot = await slots.get_or_404(slot_id)
        if slot.practitioner_id != appointment.practitioner_id:
            raise Unprocessable("The new time slot belongs to another practitioner.")
        slot = await _claim_slot(session, slot_id)
        start_time, end_time = slot.start_time, slot.end_time
    assert start_time is not None and end_time is not None
    if old_slot_id is not None:
        await slots.release_place(old_slot_id)
    async with _no_overlap(
        session,
        practitioner_id=appointment.practitioner_id,
        start_time=start_time,
        end_time=end_time,
        exclude_id=appointment.id,
    ):
        appointment.time_slot_id = slot.id if slot else None
        appointment.shared_slot = bool(slot and slot.capacity > 1)
        appointment.start_time, appointment.end_time = start_time, end_time
        if slot is not None:
            appointment.location_id = appointment.location_id or slot.location_id


async def cancel_appointment(
    session: AsyncSession,
    appointment_id: uuid.UUID,
    *,
    notify_patient: bool,
    gateway: WorkflowGateway,
    reason: str | None = None,
) -> Appointment:
    """Cancel: the slot's place is freed, reminders stop, the patient is told, the waitlist is offered it."""
    repo = AppointmentRepository(session)
    appointment = await repo.get_or_404(appointment_id)
    _transition(appointment, S.CANCELLED)
    if reason is not None:
        appointment.cancellation_reason = reason
    if appointment.time_slot_id is not None:
        await TimeSlotRepository(session).release_place(appointment.time_slot_id)
    await repo.save(appointment)
    await workflow_jobs.cancel_appointment_workflow(session, appointment, notify_patient=notify_patient)
    await backfill.backfill_after_cancellation(session, gateway, appointment)
    return appointment


async def delete_appointment(
    session: AsyncSession, appointment_id: uuid.UUID, gateway: WorkflowGateway
) -> None:
    """Remove an appointment permanently (its slot place is freed and its workflow ended)."""
    repo = AppointmentRepository(session)
    appointment = await repo.get_or_404(appointment_id)
    if appointment.status in ACTIVE and appointment.time_slot_id is not None:
        await TimeSlotRepository(session).release_place(appointment.time_slot_id)
    workflow_jobs.finish_appointment_workflow(session, appointment)
    await repo.delete(appointment)


async def check_conflicts(
    session: AsyncSession,
    *,
    practitioner_id: uuid.UUID,
    start_time: datetime,
    end_time: datetime,
    exclude_appointment_id: uuid.UUID | None,
) -> ConflictCheckResponse:
    """The practitioner's active appointments overlapping the proposed time."""
    if end_time <= start_time:
        raise Unprocessable("end_time must be after start_time.")
    await PractitionerRepository(session).get_or_404(practitioner_id)
    clashes = await AppointmentRepository(session).overlapping(
        practitioner_id=practitioner_id,
        start_time=start_time,
        end_time=end_time,
        exclude_id=exclude_appointment_id,
    )
    return ConflictCheckResponse(
        has_conflict=bool(clashes),
        conflict_count=len(clashes),
        conflicting_appointments=conflict_items(clashes),
    )


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


async def todays_appointments(
    session: AsyncSession,
    *,
    practitioner_id: uuid.UUID | None,
    location_id: uuid.UUID | None,
    status: str | None,
) -> list[AppointmentDetailResponse]:
    """Appointments on the clinic's local today (each location's time zone, else the tenant's)."""
    repo = AppointmentRepository(session)
    tenant_tz = await tenant_timezone(session, session.info["tenant_id"])
    # "Today" differs by location time zone: take the window around every zone's today, then filter exactly.
    todays = {datetime.now(ZoneInfo(tz)).date() for tz in await _zones_in_use(session, tenant_tz)}
    stmt = repo.filtered(
        tenant_tz=tenant_tz,
        practitioner_id=practitioner_id,
        location_id=location_id,
        status=status,
        start_date=min(todays),
        end_date=max(todays),
    )
    rows = [a for a in (await session.scalars(stmt)).all()]
    zones = await _zone_of(session, rows, tenant_tz)
    rows = [
        a
        for a in rows
        if a.start_time.astimezone(ZoneInfo(zones[a.id])).date() == datetime.now(ZoneInfo(zones[a.id])).date()
    ]
    return await with_details(session, rows)


async def _zones_in_use(session: AsyncSession, tenant_tz: str) -> set[str]:
    zones = set((await session.scalars(select(Location.timezone).distinct())).all())
    return zones | {tenant_tz}


async def _zone_of(session: AsyncSession, rows: list[Appointment], tenant_tz: str) -> dict[uuid.UUID, str]:
    locations = await locations_by_id(session, {a.location_id for a in rows if a.location_id})
    return {
        a.id: locations[a.location_id].timezone if a.location_id in locations else tenant_tz for a in rows
    }


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
