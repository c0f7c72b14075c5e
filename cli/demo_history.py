"""The demo clinic's past: visits, the messages around them and finished journeys, dated in the last month.

The services only act in the present (a booking starts reminders, a journey instance starts its workflow),
so the past is written as rows with their past statuses and timestamps (journey stages through the journeys'
own repository; the database's constraints and analytics triggers apply as to any write). None of it gets a
workflow: a finished visit, a delivered message or a completed journey has nothing left to run, so no
workflow command is recorded for any of it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from cli.demo_roster import (
    BOOKING_CHANNELS,
    CANCELLATION_REASONS,
    FOLLOW_UP_REPLIES,
    REMINDER_REPLIES,
    VISIT_TYPES,
)
from core.languages import ENGLISH
from domain.analytics.sentiment import record_inbound_sentiment
from domain.communications.models import Communication
from domain.communications.templates import format_time
from domain.enums import AppointmentStatus, Channel, Direction, JourneyInstanceStatus, StageStatus
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage, JourneyStage
from domain.journeys.repository import JourneyInstanceRepository
from domain.journeys.service import definition_snapshot, mark_cancelled
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment

HISTORY_DAYS = 30
CLINIC_EMAIL = "frontdesk@example.com"
CLINIC_PHONE = "+12125550100"


@dataclass
class Clinic:
    """What the history is written for: the clinic's people, place, zone and the present moment."""

    name: str
    tz: ZoneInfo
    now: datetime
    location_id: uuid.UUID
    practitioners: list[Practitioner]
    patients: list[Patient]
    rng: random.Random

    @property
    def today(self) -> date:
        """The clinic's local date."""
        return self.now.astimezone(self.tz).date()

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A local wall-clock time on `day`, in UTC."""
        return datetime.combine(day, time(hour, minute), tzinfo=self.tz).astimezone(UTC)


def past_visit(
    clinic: Clinic, patient: Patient, practitioner: Practitioner, start: datetime, status: AppointmentStatus
) -> Appointment:
    """A visit that already happened, with the outcome it had and that outcome's timestamps (no workflow:
    nothing is left to remind). The database's exclusion constraint still refuses a double-booking."""
    appointment = Appointment(
        id=uuid.uuid4(),
        patient_id=patient.id,
        practitioner_id=practitioner.id,
        location_id=clinic.location_id,
        start_time=start,
        end_time=start + timedelta(minutes=30),
        status=status.value,
        appointment_type=clinic.rng.choice(VISIT_TYPES),
        source_channel=clinic.rng.choice(BOOKING_CHANNELS),
        created_at=start - timedelta(days=clinic.rng.randint(3, 20)),
    )
    if status in (AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW):
        appointment.confirmed_at = start - timedelta(hours=20)
    if status == AppointmentStatus.COMPLETED:
        appointment.checked_in_at = start - timedelta(minutes=8)
        appointment.completed_at = start + timedelta(minutes=30)
    elif status == AppointmentStatus.CANCELLED:
        appointment.cancelled_at = start - timedelta(days=2)
        appointment.cancellation_reason = clinic.rng.choice(CANCELLATION_REASONS)
    return appointment


def _outcome(rng: random.Random) -> AppointmentStatus:
    roll = rng.random()
    if roll < 0.74:
        return AppointmentStatus.COMPLETED
    return AppointmentStatus.NO_SHOW if roll < 0.86 else AppointmentStatus.CANCELLED


async def past_visits(session: AsyncSession, clinic: Clinic) -> list[Appointment]:
    """Two visits a weekday per practitioner over the last month, and this morning's (those already over)."""
    rng, visits = clinic.rng, []
    for days_ago in range(HISTORY_DAYS, 0, -1):
        day = clinic.today - timedelta(days=days_ago)
        if day.weekday() >= 5:
            continue
        for practitioner in clinic.practitioners:
            for hour, minute in rng.sample([(9, 0), (10, 0), (11, 30), (14, 0), (15, 0), (16, 30)], 2):
                patient = rng.choice(clinic.patients)
                start = clinic.at(day, hour, minute)
                visits.append(past_visit(clinic, patient, practitioner, start, _outcome(rng)))
    session.add_all(visits)
    await session.flush()
    return visits


async def todays_finished_visits(
    session: AsyncSession, clinic: Clinic, times: list[tuple[int, int]], patients: list[Patient]
) -> tuple[list[Appointment], list[tuple[Practitioner, datetime, Patient]]]:
    """Today's visits at `times` for each practitioner: those over are written as done (one no-show), and
    the rest are returned (practitioner, start, patient) for the booking service."""
    done, to_book = [], []
    for number, practitioner in enumerate(clinic.practitioners):
        for slot, (hour, minute) in enumerate(times):
            patient = patients[(number * len(times) + slot) % len(patients)]
            start = clinic.at(clinic.today, hour, minute)
            if start + timedelta(minutes=30) <= clinic.now:
                status = (
                    AppointmentStatus.NO_SHOW if (number, slot) == (1, 0) else AppointmentStatus.COMPLETED
                )
                done.append(past_visit(clinic, patient, practitioner, start, status))
            elif start > clinic.now + timedelta(minutes=5):
                to_book.append((practitioner, start, patient))
    session.add_all(done)
    await session.flush()
    return done, to_book


def message(
    clinic: Clinic,
    patient: Patient,
    *,
    direction: Direction,
    channel: Channel,
    text: str,
    at: datetime,
    appointment: Appointment | None = None,
    template: str | None = None,
) -> Communication:
    """A message of the clinic's past, as it was sent or received (never handed to a provider)."""
    outbound = direction == Direction.OUTBOUND
    patient_address = patient.email_primary if channel == Channel.EMAIL else patient.phone_primary
    clinic_address = CLINIC_EMAIL if channel == Channel.EMAIL else CLINIC_PHONE
    record = Communication(
        id=uuid.uuid4(),
        patient_id=patient.id,
        appointment_id=appointment.id if appointment else None,
        direction=direction.value,
        channel=channel.value,
        recipient=patient_address if outbound else clinic_address,
        sender=clinic_address if outbound else patient_address,
        subject=f"Message from {clinic.name}" if channel == Channel.EMAIL else None,
        message=text,
        template_name=template,
        provider="demo",  # seeded history: never handed to a provider
        idempotency_key=f"demo:{uuid.uuid4()}",
        created_at=at,
        meta_data={"demo_history": True},
    )
    if outbound:
        record.status = "read" if clinic.rng.random() < 0.3 else "delivered"
        record.sent_at, record.delivered_at = at + timedelta(seconds=2), at + timedelta(seconds=9)
        record.read_at = at + timedelta(minutes=12) if record.status == "read" else None
    else:
        record.status = "received"
    return record


def _exchange(
    clinic: Clinic,
    patient: Patient,
    channel: Channel,
    visit: Appointment,
    text: str,
    at: datetime,
    template: str,
    reply_chance: float,
    reply_minutes: tuple[int, int],
    replies: list[str],
) -> list[Communication]:
    """A message about `visit` and, by chance (never by email), the patient's reply some minutes later."""
    sent = message(
        clinic,
        patient,
        direction=Direction.OUTBOUND,
        channel=channel,
        text=text,
        at=at,
        appointment=visit,
        template=template,
    )
    if channel == Channel.EMAIL or clinic.rng.random() >= reply_chance:
        return [sent]
    reply_at = at + timedelta(minutes=clinic.rng.randint(*reply_minutes))
    reply = message(
        clinic,
        patient,
        direction=Direction.INBOUND,
        channel=channel,
        text=clinic.rng.choice(replies),
        at=reply_at,
    )
    return [sent, reply]


async def conversations(session: AsyncSession, clinic: Clinic, visits: list[Appointment]) -> int:
    """Reminders before the visits and follow-ups after them, with the patients' replies (scored for
    sentiment as the inbound path scores them); how many messages."""
    rng = clinic.rng
    by_id = {p.id: p for p in clinic.patients}
    doctors = {p.id: p for p in clinic.practitioners}
    records: list[Communication] = []
    for visit in visits:
        if visit.status == AppointmentStatus.CANCELLED.value:
            continue
        patient, doctor = by_id[visit.patient_id], doctors[visit.practitioner_id]
        channel = Channel(patient.preferred_channel or Channel.SMS.value)
        local = visit.start_time.astimezone(clinic.tz)
        reminder_at = visit.start_time - timedelta(hours=24)
        text = (
            f"Hi {patient.first_name}, this is a reminder of your appointment with Dr {doctor.last_name} "
            f"on {local:%A %d %B} at {format_time(local, ENGLISH)} at {clinic.name}. Reply C to confirm."
        )
        records += _exchange(
            clinic,
            patient,
            channel,
            visit,
            text,
            reminder_at,
            "apt_reminder",
            0.6,
            (3, 180),
            REMINDER_REPLIES,
        )
        if visit.status == AppointmentStatus.COMPLETED.value and rng.random() < 0.4:
            follow_up_at = visit.start_time + timedelta(hours=rng.randint(20, 30))
            text = (
                f"Hi {patient.first_name}, how are you feeling after your visit with Dr {doctor.last_name}?"
            )
            records += _exchange(
                clinic,
                patient,
                channel,
                visit,
                text,
                follow_up_at,
                "general_message",
                0.8,
                (10, 600),
                FOLLOW_UP_REPLIES,
            )
    records = [r for r in records if r.created_at < clinic.now]
    session.add_all(records)
    await session.flush()
    for record in records:
        await record_inbound_sentiment(session, record)
    return len(records)


async def finished_journeys(
    session: AsyncSession,
    clinic: Clinic,
    journey: Journey,
    stages: list[JourneyStage],
    patients: list[Patient],
    *,
    cancel_last: bool,
    began: datetime | None = None,
) -> list[JourneyInstance]:
    """Instances that ran their course over the last weeks (the last one cancelled half-way, if asked),
    written stage by stage through the journeys repository with the times they would have had; started a
    minute apart from `began` when given (a campaign's pace), else scattered over the last weeks."""
    repo, rng, finished = JourneyInstanceRepository(session), clinic.rng, []
    for number, patient in enumerate(patients):
        started = (
            began + timedelta(minutes=number)
            if began is not None
            else clinic.now - timedelta(days=rng.randint(12, 28), hours=rng.randint(0, 8))
        )
        instance_id = uuid.uuid4()
        instance = JourneyInstance(
            id=instance_id,
            journey_id=journey.id,
            patient_id=patient.id,
            status=JourneyInstanceStatus.ACTIVE.value,
            definition_snapshot=definition_snapshot(journey, stages),
            started_at=started,  # no workflow: it ran its course before the demo began
            created_at=started,
        )
        session.add(instance)
        session.add_all(
            JourneyInstanceStage(
                instance_id=instance_id,
                stage_id=s.id,
                order_index=s.order_index,
                name=s.name,
                status=StageStatus.PENDING.value,
            )
            for s in stages
        )
        await session.flush()
        cancel = cancel_last and number == len(patients) - 1
        at = started
        for stage in stages[: 2 if cancel else len(stages)]:
            await repo.record_stage(instance_id, stage.order_index, StageStatus.ACTIVE.value, at, None)
            at += timedelta(hours=rng.randint(1, 40))
            await repo.record_stage(instance_id, stage.order_index, StageStatus.COMPLETED.value, at, None)
        if cancel:
            await mark_cancelled(session, instance_id, at + timedelta(hours=3))
        else:
            await repo.finish(instance_id, JourneyInstanceStatus.COMPLETED, min(at, clinic.now))
        finished.append(instance)
    return finished
