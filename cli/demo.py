"""`prm seed --demo`: a clinic worth exploring, created through the same domain services the API calls.

One location (with its time zone), four practitioners with open time slots over the next two weeks, 100
fictional patients, a month of past visits with the reminders, follow-ups and replies around them, today's
and the coming weeks' bookings, two journeys with instances finished, cancelled and still running, a few
messages on their way and open tickets. The present goes through the services, so what should have a
workflow has its start recorded with it (`core.workflow_commands`): every upcoming appointment's reminders,
every running journey instance, every open ticket's SLA clock and every message on its way. The past is
written by `cli.demo_history`. Workflow inputs carry ids only, as everywhere.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cli.demo_campaign import finished_recall_campaign
from cli.demo_history import Clinic, conversations, finished_journeys, past_visits, todays_finished_visits
from cli.demo_roster import BOOKING_CHANNELS, PRACTITIONERS, VISIT_TYPES, DemoPatient, demo_patients
from domain.communications.service import send_message
from domain.enums import AppointmentStatus, Channel, JourneyInstanceStatus, StageStatus, TicketPriority
from domain.enums import TicketStatus as T
from domain.journeys import service as journeys
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import JourneyCreate, JourneyInstanceCreate
from domain.patients.models import Patient
from domain.patients.repository import PatientRepository
from domain.patients.schemas import PatientCreate
from domain.patients.service import create_patient
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import PractitionerCreate
from domain.practitioners.service import create_practitioner
from domain.scheduling import lifecycle
from domain.scheduling.models import Appointment, TimeSlot
from domain.scheduling.repository import LocationRepository, TimeSlotRepository
from domain.scheduling.schemas import AppointmentDirectCreate, AppointmentUpdate
from domain.scheduling.service import book_appointment
from domain.scheduling.slot_schemas import LocationCreate, TimeSlotCreate
from domain.scheduling.slots import create_location, create_slot
from domain.tickets.schemas import TicketCreate, TicketUpdate
from domain.tickets.service import open_ticket, update_ticket

log = logging.getLogger(__name__)

ACTOR = "demo-seed"
ONBOARDING = "New-patient onboarding"
POST_SURGERY = "Post-surgery recovery"
WAITING_STAGE = 2  # the onboarding stage that waits for a coordinator (`POST .../advance`)
SLOT_DAYS = 14
SLOT_TIMES = [(9, 0), (10, 0), (14, 0), (15, 0)]
TODAY_TIMES = [(8, 0), (12, 0), (16, 30), (17, 30)]  # outside the slots' hours: no overlap with them

JOURNEYS = [
    JourneyCreate(
        name=ONBOARDING,
        description="Welcome a new patient, check their intake forms, remind them of the first visit.",
        journey_type="onboarding",
        stages=[
            {
                "name": "Welcome",
                "order_index": 1,
                "trigger_event": "immediate",
                "actions": [
                    {
                        "type": "send_message",
                        "text": "Welcome to {{ clinic_name }}, {{ patient_first_name }}! "
                        "Your intake forms are in the patient portal.",
                    }
                ],
            },
            {"name": "Intake forms reviewed", "order_index": WAITING_STAGE, "trigger_event": "manual"},
            {
                "name": "First-visit reminder",
                "order_index": 3,
                "trigger_event": {"type": "before_appointment", "offset": {"days": 1}},
                "actions": [{"type": "send_message", "template_id": "apt_reminder"}],
            },
            {
                "name": "One-month check-in",
                "order_index": 4,
                "trigger_event": {"type": "delay", "delay": {"days": 30}},
                "actions": [
                    {
                        "type": "send_message",
                        "text": "Hi {{ patient_first_name }}, how was your first "
                        "month with {{ clinic_name }}? Reply any time.",
                    }
                ],
            },
        ],
    ),
    JourneyCreate(
        name=POST_SURGERY,
        description="Check in on a patient after surgery; a surgeon reviews before discharge from follow-up.",
        journey_type="post_surgery",
        stages=[
            {
                "name": "Welcome home",
                "order_index": 1,
                "trigger_event": "immediate",
                "actions": [{"type": "send_message", "template_id": "post_op_welcome"}],
            },
            {
                "name": "Day-2 check-in",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"days": 2}},
                "actions": [{"type": "send_message", "template_id": "recovery_check_in"}],
            },
            {
                "name": "Patient answered",
                "order_index": 3,
                "trigger_event": {
                    "type": "reply_received",
                    "timeout": {"days": 1},
                    "on_timeout": "create_ticket",
                },
            },
            {"name": "Surgeon review", "order_index": 4, "trigger_event": "manual"},
        ],
    ),
]

TICKETS = [
    ("Chest pain mentioned in a reply", TicketPriority.URGENT, T.OPEN, "clinical"),
    ("Call back about post-op swelling", TicketPriority.HIGH, T.IN_PROGRESS, "clinical"),
    ("Insurance pre-authorisation missing", TicketPriority.MEDIUM, T.WAITING_ON_PATIENT, "billing"),
    ("Prescription refill request", TicketPriority.MEDIUM, T.OPEN, "pharmacy"),
    ("Missed appointment: offer a new time", TicketPriority.MEDIUM, T.IN_PROGRESS, "scheduling"),
    ("Request for medical records", TicketPriority.LOW, T.OPEN, "records"),
    ("Date of birth looks wrong on file", TicketPriority.LOW, T.WAITING_ON_PATIENT, "records"),
]


@dataclass(frozen=True)
class DemoHighlights:
    """What the banner points a newcomer at: one patient with a journey waiting on a coordinator."""

    patient_id: uuid.UUID
    instance_id: uuid.UUID | None
    waiting_stage: int = WAITING_STAGE


async def seed_demo_clinic(session: AsyncSession, *, clinic_name: str, timezone: str) -> DemoHighlights:
    """Fill the session's (new, empty) tenant with the demo clinic; flushes only (the workflows' starts are
    recorded with their rows and delivered after the caller's commit)."""
    tz, now = ZoneInfo(timezone), datetime.now(UTC)
    location = await create_location(
        LocationRepository(session),
        LocationCreate(
            name=f"{clinic_name} Midtown",
            address="100 Example Avenue, New York, NY 10001",
            phone="+1 212 555 0100",
            timezone=timezone,
        ),
    )
    practitioners = [await _practitioner(session, i) for i in range(len(PRACTITIONERS))]
    patients = [await _patient(session, p) for p in demo_patients()]
    clinic = Clinic(clinic_name, tz, now, location.id, practitioners, patients, random.Random(7))  # noqa: S311

    history = await past_visits(session, clinic)
    done_today, to_book = await todays_finished_visits(session, clinic, TODAY_TIMES, patients[60:])
    slots = await _open_slots(session, clinic)
    # The first patients are the newcomers: each has a first visit coming and is being onboarded.
    upcoming = await _book_upcoming(session, clinic, slots, patients[:30], to_book)
    message_count = await conversations(session, clinic, history + done_today)

    onboarding, post_surgery = [
        await journeys.create_journey(JourneyRepository(session), j) for j in JOURNEYS
    ]
    first_visit = {a.patient_id: a.id for a in reversed(upcoming)}
    waiting = [
        await _place(session, onboarding, p, first_visit.get(p.id), key=f"demo:onboarding:{p.mrn}")
        for p in patients[:8]
    ]
    operated = patients[30:40]
    for patient in operated[:6]:
        await _place(session, post_surgery, patient, None, key=f"demo:post-surgery:{patient.mrn}")
    repo = JourneyRepository(session)
    stages = await repo.stages_of([onboarding.id, post_surgery.id])
    await finished_journeys(
        session, clinic, onboarding, stages[onboarding.id], patients[40:48], cancel_last=False
    )
    await finished_journeys(
        session, clinic, post_surgery, stages[post_surgery.id], patients[48:53], cancel_last=True
    )
    await finished_recall_campaign(session, clinic, slots)

    await _messages_on_their_way(session, clinic, patients[53:58])
    await _open_tickets(session, clinic, operated[:3] + patients[58:62])
    log.info(
        "demo clinic: %d patients, %d past and %d upcoming visits, %d past messages",
        len(patients),
        len(history) + len(done_today),
        len(upcoming),
        message_count,
    )
    return DemoHighlights(patient_id=patients[0].id, instance_id=waiting[0].id)


async def demo_highlights(session: AsyncSession, tenant_id: uuid.UUID) -> DemoHighlights | None:
    """The banner's pointers for a demo clinic seeded earlier: the oldest onboarding instance still waiting
    on (or not yet at) its coordinator stage, else the first demo patient; None for any other tenant."""
    journey_ids = select(Journey.id).where(Journey.tenant_id == tenant_id, Journey.name == ONBOARDING)
    not_yet_advanced = select(JourneyInstanceStage.instance_id).where(
        JourneyInstanceStage.order_index == WAITING_STAGE,
        JourneyInstanceStage.status.in_([StageStatus.PENDING.value, StageStatus.ACTIVE.value]),
    )
    instance = await session.scalar(
        select(JourneyInstance)
        .where(
            JourneyInstance.tenant_id == tenant_id,
            JourneyInstance.journey_id.in_(journey_ids),
            JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
            JourneyInstance.id.in_(not_yet_advanced),
        )
        .order_by(JourneyInstance.started_at, JourneyInstance.id)
        .limit(1)
    )
    if instance is not None:
        return DemoHighlights(patient_id=instance.patient_id, instance_id=instance.id)
    patient_id = await session.scalar(
        select(Patient.id).where(Patient.tenant_id == tenant_id, Patient.mrn == "MRN-DEMO-0001")
    )
    return DemoHighlights(patient_id=patient_id, instance_id=None) if patient_id else None


# ---- the parts --------------------------------------------------------------------------------------


async def _practitioner(session: AsyncSession, index: int) -> Practitioner:
    doc = PRACTITIONERS[index]
    data = PractitionerCreate(
        first_name=doc.first_name,
        last_name=doc.last_name,
        gender=doc.gender,
        qualification=doc.qualification,
        speciality=doc.speciality,
        sub_speciality=doc.sub_speciality,
        license_number=doc.license_number,
        phone_primary=doc.phone,
        email_primary=doc.email,
    )
    return await create_practitioner(PractitionerRepository(session), data)


async def _patient(session: AsyncSession, person: DemoPatient) -> Patient:
    data = PatientCreate(
        mrn=person.mrn,
        first_name=person.first_name,
        last_name=person.last_name,
        date_of_birth=person.date_of_birth,
        gender=person.gender,
        phone_primary=person.phone,
        email_primary=person.email,
        city=person.city,
        state=person.state,
        country="US",
        preferred_channel=person.preferred_channel,
        preferred_language=person.preferred_language,
    )
    return await create_patient(PatientRepository(session), data)


async def _open_slots(session: AsyncSession, clinic: Clinic) -> list[TimeSlot]:
    """Half-hour slots on weekdays (and what is left of today) for every practitioner, two weeks ahead."""
    repo, slots = TimeSlotRepository(session), []
    days = [clinic.today + timedelta(days=n) for n in range(SLOT_DAYS + 1)]
    for day in days:
        if day.weekday() >= 5 and day != clinic.today:
            continue
        for practitioner in clinic.practitioners:
            for hour, minute in SLOT_TIMES:
                start = clinic.at(day, hour, minute)
                if start <= clinic.now + timedelta(minutes=30):
                    continue
                data = TimeSlotCreate(
                    practitioner_id=practitioner.id,
                    location_id=clinic.location_id,
                    start_time=start,
                    end_time=start + timedelta(minutes=30),
                )
                slots.append(await create_slot(repo, data))
    return slots


async def _book_upcoming(
    session: AsyncSession,
    clinic: Clinic,
    slots: list[TimeSlot],
    newcomers: list[Patient],
    today: list[tuple[Practitioner, datetime, Patient]],
) -> list[Appointment]:
    """Book through the booking service (each gets its reminder workflow): the rest of today's visits, and
    one visit in an open slot for each newcomer; about a third are confirmed."""
    rng, booked = clinic.rng, []
    picks = rng.sample(slots, min(len(newcomers), len(slots)))
    requests = [
        AppointmentDirectCreate(
            patient_id=patient.id,
            practitioner_id=doc.id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
            location_id=clinic.location_id,
            appointment_type=rng.choice(VISIT_TYPES),
            source_channel="phone",
        )
        for doc, start, patient in today
    ] + [
        AppointmentDirectCreate(
            patient_id=patient.id,
            time_slot_id=slot.id,
            appointment_type="new-patient",
            source_channel=rng.choice(BOOKING_CHANNELS),
        )
        for patient, slot in zip(newcomers, picks, strict=False)
    ]
    for number, data in enumerate(requests):
        appointment = await book_appointment(session, data)
        if number % 3 == 0:
            confirm = AppointmentUpdate(status=AppointmentStatus.CONFIRMED)
            appointment = await lifecycle.update_appointment(session, appointment.id, confirm)
        booked.append(appointment)
    return booked


async def _place(
    session: AsyncSession,
    journey: Journey,
    patient: Patient,
    appointment_id: uuid.UUID | None,
    *,
    key: str,
) -> JourneyInstance:
    data = JourneyInstanceCreate(journey_id=journey.id, patient_id=patient.id, appointment_id=appointment_id)
    instance, _ = await journeys.create_instance(session, data, idempotency_key=key)
    return instance


async def _messages_on_their_way(session: AsyncSession, clinic: Clinic, patients: list[Patient]) -> None:
    """Lab results going out now, and payment reminders scheduled for tomorrow morning: each message gets
    its delivery workflow (the outbox records it, since no provider is configured)."""
    tomorrow = clinic.at(clinic.today + timedelta(days=1), 10, 0)
    for number, patient in enumerate(patients):
        doctor = clinic.practitioners[number % len(clinic.practitioners)]
        text = (
            f"{clinic.name}: the results of your blood panel are ready. Log in to the portal or call us to "
            f"discuss them with Dr {doctor.last_name}."
        )
        await send_message(
            session,
            patient_id=patient.id,
            channel=Channel.SMS,
            message=text,
            template_name="lab_results_ready",
            idempotency_key=f"demo:lab:{patient.mrn}",
        )
        if number % 2 == 0:
            text = f"Hi {patient.first_name}, a balance of $40.00 for your last visit is due next week."
            await send_message(
                session,
                patient_id=patient.id,
                channel=Channel.SMS,
                message=text,
                template_name="payment_reminder",
                scheduled_for=tomorrow,
                idempotency_key=f"demo:payment:{patient.mrn}",
            )


async def _open_tickets(session: AsyncSession, clinic: Clinic, patients: list[Patient]) -> None:
    """Open tickets through the tickets service (each starts its SLA workflow) and move some on."""
    for (title, priority, status, category), patient in zip(TICKETS, patients, strict=False):
        data = TicketCreate(
            patient_id=patient.id,
            title=title,
            priority=priority,
            category=category,
            description="Seeded for the demo.",
        )
        ticket = await open_ticket(session, data, actor=ACTOR)
        if status != T.OPEN:
            await update_ticket(session, ticket.id, TicketUpdate(status=status), actor=ACTOR)
