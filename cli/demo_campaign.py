"""The demo clinic's finished recall campaign: adults of 40 and over invited to book their annual check-up,
three weeks ago, with results worth reading (`GET /campaigns/{id}/results`).

Written as the campaign would have left it: the cohort, the campaign (completed), its frozen members (the
cohort's patients at launch; the inactive ones skipped), each enrolled member's journey instance run to
its end with its invitation, some replies, one opt-out, and bookings made since through the booking
service (each with its reminder workflow). No campaign workflow: it ran its course before the demo began.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cli.demo_history import Clinic, finished_journeys, message
from domain.campaigns.models import Campaign, CampaignMember
from domain.campaigns.plan import CampaignStatus, MemberState, SkipReason
from domain.cohorts.schemas import CohortCreate
from domain.cohorts.service import create_cohort, members_of
from domain.communications.models import Communication
from domain.enums import Channel, Direction, PatientStatus
from domain.journeys import service as journeys
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import JourneyCreate
from domain.patients.models import ChannelConsent, Patient
from domain.scheduling.models import TimeSlot
from domain.scheduling.schemas import AppointmentDirectCreate
from domain.scheduling.service import book_appointment

INVITATION = (
    "Hi {first}, it has been a while since your last check-up at {clinic}. "
    "Reply BOOK and we will find you a time, or call us."
)
RECALL = JourneyCreate(
    name="Annual wellness recall",
    description="Invite a patient who is due to book their yearly check-up.",
    journey_type="recall",
    stages=[
        {
            "name": "Invitation",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [
                {
                    "type": "send_message",
                    "text": "Hi {{ patient_first_name }}, it has been a while since your last check-up at "
                    "{{ clinic_name }}. Reply BOOK and we will find you a time, or call us.",
                }
            ],
        }
    ],
)
LAUNCHED_DAYS_AGO = 21
REPLY_SHARE, BOOK_SHARE = 0.35, 0.25


async def finished_recall_campaign(
    session: AsyncSession, clinic: Clinic, open_slots: list[TimeSlot]
) -> Campaign:
    """Seed the finished recall campaign (see the module docstring); bookings take some of `open_slots`."""
    rng = clinic.rng
    journey = await journeys.create_journey(JourneyRepository(session), RECALL)
    stages = (await JourneyRepository(session).stages_of([journey.id]))[journey.id]
    cohort = await create_cohort(
        session,
        CohortCreate(
            name="Adults 40 and over",
            description="Everyone due an annual wellness visit.",
            criteria={"age": {"min": 40}},  # type: ignore[arg-type]  # validated into CohortCriteria
        ),
    )
    launched = clinic.now - timedelta(days=LAUNCHED_DAYS_AGO)
    patients = {p.id: p for p in clinic.patients}
    frozen = [patients[i] for i in await session.scalars(members_of(cohort, now=launched)) if i in patients]
    frozen.sort(key=lambda p: p.id)
    enrolled = [p for p in frozen if p.status == PatientStatus.ACTIVE]
    instances = await finished_journeys(
        session, clinic, journey, stages, enrolled, cancel_last=False, began=launched
    )
    campaign = Campaign(
        name="Annual wellness recall, autumn",
        cohort_id=cohort.id,
        journey_id=journey.id,
        status=CampaignStatus.COMPLETED.value,
        starts_at=launched,
        pace_per_minute=1,
        member_count=len(frozen),
        frozen_at=launched,
        last_batch_at=launched + timedelta(minutes=len(enrolled)),
        completed_at=launched + timedelta(minutes=len(enrolled) + 1),
        created_by="demo",
        created_at=launched - timedelta(hours=2),
    )
    session.add(campaign)
    await session.flush()
    instance_of = {i.patient_id: i for i in instances}
    for patient in frozen:
        instance = instance_of.get(patient.id)
        session.add(
            CampaignMember(
                campaign_id=campaign.id,
                patient_id=patient.id,
                state=MemberState.ENROLLED.value if instance else MemberState.SKIPPED.value,
                skip_reason=None if instance else SkipReason.INACTIVE.value,
                journey_instance_id=instance.id if instance else None,
                processed_at=instance.started_at if instance else launched,
            )
        )
    free = [s for s in open_slots if s.booked_count < s.capacity]
    for number, patient in enumerate(enrolled):
        instance = instance_of[patient.id]
        invited = launched + timedelta(minutes=number, seconds=30)  # its instance started a minute apart
        invitation = message(
            clinic,
            patient,
            direction=Direction.OUTBOUND,
            channel=Channel.SMS,
            text=INVITATION.format(first=patient.first_name, clinic=clinic.name),
            at=invited,
        )
        invitation.journey_instance_id = instance.id
        session.add(invitation)
        if number == 0:  # one patient had had enough of messages
            _opt_out(session, clinic, patient, invited + timedelta(hours=2))
        elif rng.random() < REPLY_SHARE:
            reply = "BOOK" if rng.random() < 0.8 else "I'll call next week, thanks"
            at = invited + timedelta(hours=rng.randint(1, 30))
            inbound = message(
                clinic, patient, direction=Direction.INBOUND, channel=Channel.SMS, text=reply, at=at
            )
            session.add(inbound)
        if number and free and rng.random() < BOOK_SHARE:
            slot = free.pop(rng.randrange(len(free)))
            await book_appointment(
                session,
                AppointmentDirectCreate(
                    patient_id=patient.id,
                    time_slot_id=slot.id,
                    appointment_type="annual-wellness",
                    source_channel="sms",
                ),
            )
    await session.flush()
    return campaign


def _opt_out(session: AsyncSession, clinic: Clinic, patient: Patient, at: datetime) -> None:
    """The patient's STOP and the opt-out it recorded."""
    session.add(
        message(clinic, patient, direction=Direction.INBOUND, channel=Channel.SMS, text="STOP", at=at)
    )
    session.add(
        ChannelConsent(
            patient_id=patient.id, channel=Channel.SMS.value, opted_out=True, changed_at=at, source="sms"
        )
    )


def _reply(clinic: Clinic, patient: Patient, text: str, at: datetime) -> Communication:
    """An SMS from the patient."""
    return message(clinic, patient, direction=Direction.INBOUND, channel=Channel.SMS, text=text, at=at)
