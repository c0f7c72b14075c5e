"""What happens to a booked appointment: status changes, reschedules by PATCH, cancellation, deletion.

The lifecycle runs booked -> confirmed -> checked_in -> completed; cancelled and no_show end it early.
Each change also tells the appointment's workflow (reminders) and, for a cancellation, offers the freed
time to the waitlist. Apart from `service` (booking), which it calls to move an appointment safely; the
booking paths (API, chat, waitlist) never need the lifecycle.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict
from core.events import EventType
from domain.enums import AppointmentStatus
from domain.scheduling import backfill, notifications, service, workflow_jobs
from domain.scheduling.events import emit_appointment_event
from domain.scheduling.models import Appointment
from domain.scheduling.repository import ACTIVE, AppointmentRepository, LocationRepository, TimeSlotRepository
from domain.scheduling.schemas import AppointmentUpdate
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
# The status changes that are domain events (a cancellation emits its own, in `cancel_appointment`).
EVENTS = {
    S.CHECKED_IN: EventType.APPOINTMENT_CHECKED_IN,
    S.COMPLETED: EventType.APPOINTMENT_COMPLETED,
    S.NO_SHOW: EventType.APPOINTMENT_NO_SHOW,
}
STAMPS = {
    S.CONFIRMED: "confirmed_at",
    S.CHECKED_IN: "checked_in_at",
    S.COMPLETED: "completed_at",
    S.CANCELLED: "cancelled_at",
}


async def update_appointment(
    session: AsyncSession, appointment_id: uuid.UUID, data: AppointmentUpdate
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
        await service.reschedule(
            session, appointment, slot_id=slot_id, start_time=start_time, end_time=end_time
        )
        rescheduled = True
    if new_status is not None and new_status != appointment.status:
        if new_status == S.CANCELLED:
            return await cancel_appointment(
                session,
                appointment_id,
                notify_patient=True,
                reason=sent.get("cancellation_reason"),
            )
        _transition(appointment, AppointmentStatus(new_status))
        if new_status in (S.COMPLETED, S.NO_SHOW):
            workflow_jobs.finish_appointment_workflow(session, appointment)
        if new_status in EVENTS:
            await emit_appointment_event(session, appointment, EVENTS[AppointmentStatus(new_status)])
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


async def cancel_appointment(
    session: AsyncSession,
    appointment_id: uuid.UUID,
    *,
    notify_patient: bool,
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
    await emit_appointment_event(session, appointment, EventType.APPOINTMENT_CANCELLED)
    await workflow_jobs.cancel_appointment_workflow(session, appointment, notify_patient=notify_patient)
    await backfill.backfill_after_cancellation(session, appointment)
    return appointment


async def delete_appointment(session: AsyncSession, appointment_id: uuid.UUID) -> None:
    """Remove an appointment permanently (its slot place is freed and its workflow ended).

    Deleting one that could still be cancelled (booked, confirmed) is a cancellation the clinic keeps no
    record of: it emits `appointment.cancelled` (fact `deleted`), so journeys triggered by cancellations
    react as they do to a cancel. The reminders stop; no cancellation message is sent (the endpoint has no
    `notify_patient`) and the waitlist is not offered the time (the offer reads the appointment's row)."""
    repo = AppointmentRepository(session)
    appointment = await repo.get_or_404(appointment_id)
    if appointment.status in ACTIVE and appointment.time_slot_id is not None:
        await TimeSlotRepository(session).release_place(appointment.time_slot_id)
    if S.CANCELLED in TRANSITIONS[AppointmentStatus(appointment.status)]:
        await emit_appointment_event(session, appointment, EventType.APPOINTMENT_CANCELLED, deleted=True)
    workflow_jobs.finish_appointment_workflow(session, appointment)
    await repo.delete(appointment)
