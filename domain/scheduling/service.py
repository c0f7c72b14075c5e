"""Appointment booking: the one conflict-safe path for booking and rescheduling, and the conflict check.

No double-booking is the database's guarantee (the exclusion constraint on a practitioner's active
appointments, the capacity check on slots); this module turns a clash into a 409 that names the
appointments in the way. What happens to an appointment once booked (status changes, cancellation) is in
`lifecycle`; the lists and counts the front desk reads are in `overview`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.database import advisory_xact_lock, after_commit, violated_constraint
from core.errors import Conflict, NotFound, Unprocessable
from core.events import EventType
from domain.enums import AppointmentStatus, PatientStatus, SlotStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.scheduling import workflow_jobs
from domain.scheduling.events import emit_appointment_event
from domain.scheduling.models import Appointment, TimeSlot
from domain.scheduling.repository import AppointmentRepository, LocationRepository, TimeSlotRepository
from domain.scheduling.schemas import AppointmentDirectCreate, ConflictCheckResponse, ConflictingAppointment

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
        if violated_constraint(exc) != OVERLAP_CONSTRAINT:
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


async def book_appointment(session: AsyncSession, data: AppointmentDirectCreate) -> Appointment:
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
    await workflow_jobs.start_appointment_workflow(session, appointment)
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
            raise Unprocessable(
                "practitioner_id does not match the time slot's practitioner.",
                loc=("body", "practitioner_id"),
            )
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
    await emit_appointment_event(session, appointment, EventType.APPOINTMENT_BOOKED)
    after_commit(session, metrics.later(metrics.appointment_booked, appointment.source_channel))
    return appointment


async def reschedule(
    session: AsyncSession,
    appointment: Appointment,
    *,
    slot_id: uuid.UUID | None,
    start_time: datetime | None,
    end_time: datetime | None,
) -> None:
    """Move the appointment to a new slot or time; the old slot's place is given back."""
    if appointment.status not in (AppointmentStatus.BOOKED.value, AppointmentStatus.CONFIRMED.value):
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
    await emit_appointment_event(session, appointment, EventType.APPOINTMENT_RESCHEDULED)


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
        raise Unprocessable("end_time must be after start_time.", loc=("query", "end_time"))
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
