"""What scheduling tells patients (reminders, cancellations, offers, confirmations), via communications.

Every message carries a business idempotency key (unique per tenant in `communications`), so a retried
activity or a repeated request never sends twice. Every text is a built-in template rendered in the
patient's language (reminders, cancellations and booking confirmations: `appointment_reminder`,
`appointment_cancelled`, `appointment_booked`; the booking chat's turns: `booking_*`; the waitlist's:
`waitlist_*`), its times and practitioners written in that language (`OfferedTime`). None is ever logged.

Every message passes the send policy in its delivery workflow. Reminders and cancellation notices wait
out quiet hours and the frequency cap; conversational messages (booking-chat replies, confirmations of
what the patient just did, waitlist offers whose hold would expire overnight) are urgent: the patient is
waiting for them, and the record says why they went during quiet hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.communications import service as communications
from domain.communications import templates
from domain.communications.models import Communication
from domain.communications.service import AppointmentFacts
from domain.enums import (
    ACTIVE_APPOINTMENT_STATUSES,
    UNSENT_COMMUNICATION_STATUSES,
    Channel,
    CommunicationStatus,
    Direction,
)
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment, Location, TimeSlot
from domain.scheduling.repository import tenant_timezone

ACTIVE = {s.value for s in ACTIVE_APPOINTMENT_STATUSES}


def reminder_key(appointment_id: uuid.UUID, offset_minutes: int, start_time_iso: str) -> str:
    """`appointment:{id}:reminder:{offset}:{start}`: one reminder per offset per appointment time."""
    return f"appointment:{appointment_id}:reminder:{offset_minutes}:{start_time_iso}"


def cancellation_key(appointment_id: uuid.UUID) -> str:
    """One cancellation notice per appointment."""
    return f"appointment:{appointment_id}:cancellation"


async def appointment_facts(session: AsyncSession, appointment_id: uuid.UUID) -> AppointmentFacts | None:
    """What a message may say of an appointment of the session's tenant (None when there is none)."""
    parts = await _appointment_parts(session, appointment_id)
    if parts is None:
        return None
    appointment, _, practitioner = parts
    return await _facts(session, appointment, practitioner)


async def _facts(
    session: AsyncSession, appointment: Appointment, practitioner: Practitioner | None
) -> AppointmentFacts:
    name = f"{practitioner.first_name} {practitioner.last_name}" if practitioner is not None else None
    location = await session.get(Location, appointment.location_id) if appointment.location_id else None
    return AppointmentFacts(
        start_time=appointment.start_time,
        practitioner_name=name,
        timezone=location.timezone if location is not None else None,
        practitioner_gender=practitioner.gender if practitioner is not None else None,
    )


async def deliver(
    session: AsyncSession,
    *,
    patient: Patient,
    message: str | None = None,
    idempotency_key: str,
    template_name: str,
    appointment_id: uuid.UUID | None = None,
    appointment: AppointmentFacts | None = None,
    channel: Channel | None = None,
    urgent: bool = False,
    variables: dict[str, Any] | communications.Localised | None = None,
) -> bool:
    """Hand one message to the communications service; False when it was already sent under that key.

    Without `message`, `template_name` is a built-in template, rendered in the patient's language with
    `variables` (written in that language when they are `Localised`)."""

    async def compose(patient: Patient) -> communications.Content:
        return await communications.render_for(
            session, patient, template_id=template_name, appointment=appointment, variables=variables
        )

    result = await communications.send_message(
        session,
        patient_id=patient.id,
        channel=channel or communications.preferred_channel(patient),
        message=compose if message is None else message,
        idempotency_key=idempotency_key,
        template_name=template_name,
        appointment_id=appointment_id,
        appointment=appointment,
        urgent=urgent,
    )
    return result.created


async def local_time(session: AsyncSession, when: datetime, location_id: uuid.UUID | None) -> datetime:
    """`when` in the location's (else the tenant's) time zone."""
    tz_name = None
    if location_id is not None:
        location = await session.get(Location, location_id)
        tz_name = location.timezone if location is not None else None
    if tz_name is None:
        tz_name = await tenant_timezone(session, session.info["tenant_id"])
    return when.astimezone(ZoneInfo(tz_name))


@dataclass(frozen=True)
class OfferedTime:
    """A time a message offers or mentions: its local start, and the practitioner's last name and gender
    (None: no practitioner to name). `written_in` gives the template's `time` and `practitioner`."""

    local: datetime
    practitioner_last_name: str | None = None
    practitioner_gender: str | None = None

    def written_in(self, language: str, *, nobody: str = "the_clinic") -> dict[str, str]:
        """`{"time": "Tue 3 Dec, 09:00", "practitioner": "Dr. Lovelace"}` in `language`; without a
        practitioner, the phrase `nobody` ("" when it is empty)."""
        if self.practitioner_last_name is not None:
            who = templates.practitioner_title(
                self.practitioner_last_name, self.practitioner_gender, language
            )
        else:
            who = templates.phrase(nobody, language) if nobody else ""
        return {"time": templates.format_moment(self.local, language), "practitioner": who}


async def offered_time(
    session: AsyncSession, start: datetime, location_id: uuid.UUID | None, practitioner_id: uuid.UUID | None
) -> OfferedTime:
    """What a message may say of a time: local to its location (else the tenant), with its practitioner."""
    practitioner = await session.get(Practitioner, practitioner_id) if practitioner_id else None
    return OfferedTime(
        await local_time(session, start, location_id),
        practitioner.last_name if practitioner is not None else None,
        practitioner.gender if practitioner is not None else None,
    )


async def _appointment_parts(
    session: AsyncSession, appointment_id: uuid.UUID, *, lock: bool = False
) -> tuple[Appointment, Patient, Practitioner] | None:
    # `lock`: hold the appointment row until the commit, so a reschedule (which updates it) waits for a
    # reminder being recorded, or the reminder sees the new time.
    appointment = await session.get(Appointment, appointment_id, with_for_update=lock)
    if appointment is None:
        return None
    patient = await session.get(Patient, appointment.patient_id)
    practitioner = await session.get(Practitioner, appointment.practitioner_id)
    if patient is None or practitioner is None:
        return None
    return appointment, patient, practitioner


async def send_reminder(
    session: AsyncSession, *, appointment_id: uuid.UUID, offset_minutes: int, planned_start: str
) -> bool:
    """Send the reminder planned for `planned_start`; skipped if the appointment moved or is not active.

    The check runs with the appointment row locked: a reschedule commits either before it (the reminder is
    skipped, and the workflow reminds of the new time) or after the reminder is recorded (and then
    supersedes it if it is still waiting to go out: `supersede_reminders`)."""
    parts = await _appointment_parts(session, appointment_id, lock=True)
    if parts is None:
        return False
    appointment, patient, practitioner = parts
    if appointment.status not in ACTIVE or appointment.start_time != datetime.fromisoformat(planned_start):
        return False
    return await deliver(
        session,
        patient=patient,
        idempotency_key=reminder_key(appointment.id, offset_minutes, planned_start),
        template_name="appointment_reminder",
        appointment_id=appointment.id,
        appointment=await _facts(session, appointment, practitioner),
    )


async def send_cancellation(session: AsyncSession, *, appointment_id: uuid.UUID) -> bool:
    """Tell the patient their appointment is cancelled (once per appointment)."""
    parts = await _appointment_parts(session, appointment_id)
    if parts is None:
        return False
    appointment, patient, practitioner = parts
    return await deliver(
        session,
        patient=patient,
        idempotency_key=cancellation_key(appointment.id),
        template_name="appointment_cancelled",
        appointment_id=appointment.id,
        appointment=await _facts(session, appointment, practitioner),
    )


async def offered_options(session: AsyncSession, slots: Sequence[TimeSlot]) -> communications.Localised:
    """The booking chat's `options` variable for `slots`, in order, written in the message's language."""
    times = [await offered_time(session, s.start_time, s.location_id, s.practitioner_id) for s in slots]
    return lambda language: {"options": [t.written_in(language) for t in times]}


async def send_confirmation(
    session: AsyncSession, *, patient: Patient, appointment: Appointment, key: str
) -> bool:
    """Confirm a booking made over chat or from the waitlist."""
    practitioner = await session.get(Practitioner, appointment.practitioner_id)
    return await deliver(
        session,
        patient=patient,
        idempotency_key=key,
        template_name="appointment_booked",
        appointment_id=appointment.id,
        appointment=await _facts(session, appointment, practitioner),
        urgent=True,
    )


async def send_conversational(
    session: AsyncSession,
    *,
    patient: Patient,
    template_name: str,
    key: str,
    variables: dict[str, Any] | communications.Localised | None = None,
    channel: Channel | None = None,
) -> bool:
    """Send a conversational message (offers, not-understood, expired, taken), a built-in template in the
    patient's language: urgent."""
    return await deliver(
        session,
        patient=patient,
        idempotency_key=key,
        template_name=template_name,
        variables=variables,
        channel=channel,
        urgent=True,
    )


async def supersede_reminders(session: AsyncSession, appointment: Appointment) -> int:
    """Fail the appointment's reminders still waiting to go out (quiet hours, the frequency cap) for a time
    that is no longer its time; how many. One UPDATE whose condition PostgreSQL re-checks after any send in
    progress commits, so a reminder that went out meanwhile is left as sent, and one already handed to its
    provider (a send attempt open, its answer not yet recorded) is left to its send step."""
    prefix = f"appointment:{appointment.id}:reminder:"
    result = await session.execute(
        update(Communication)
        .where(
            Communication.appointment_id == appointment.id,
            Communication.direction == Direction.OUTBOUND.value,
            Communication.idempotency_key.startswith(prefix, autoescape=True),
            ~Communication.idempotency_key.endswith(
                f":{appointment.start_time.isoformat()}", autoescape=True
            ),
            Communication.status.in_([s.value for s in UNSENT_COMMUNICATION_STATUSES]),
            Communication.send_attempt.is_(None),
        )
        .values(
            status=CommunicationStatus.FAILED.value,
            failed_at=func.now(),
            error_code="superseded",
            error_message="The appointment was rescheduled before this reminder went out.",
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
