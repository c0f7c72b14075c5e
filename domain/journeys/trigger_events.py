"""What a domain event says to a journey's trigger: the journeys that listen for it, the facts it is matched
against (the event's, the patient's, an inbound message's text) and the verdict. The dispatcher and the
dry run both judge events through here, so the dry run shows what the dispatcher does."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import DomainEvent, EventType
from domain.communications.models import Communication
from domain.enums import PatientStatus
from domain.journeys.models import Journey
from domain.journeys.trigger_conditions import EventFacts, Verdict, evaluate, parse_trigger_conditions
from domain.patients.models import Patient


async def candidate_journeys(session: AsyncSession, event_type: str) -> list[Journey]:
    """The session tenant's active journeys that may start on `event_type`."""
    listens = Journey.trigger_conditions["event"].astext == event_type
    if event_type == EventType.PATIENT_REGISTERED.value:
        listens = or_(listens, Journey.is_default.is_(True))
    stmt = select(Journey).where(Journey.is_active.is_(True), listens).order_by(Journey.created_at)
    return list((await session.scalars(stmt)).all())


def message_id(event: DomainEvent) -> uuid.UUID | None:
    """The inbound message a `message.received` event is about (its text is what keywords match)."""
    if event.type == EventType.MESSAGE_RECEIVED.value and event.subject_type == "communication":
        return as_uuid(event.subject_id)
    return None


def facts_of(event: DomainEvent, patient: Patient | None, text: str | None) -> EventFacts:
    """What triggers match `event` against: its facts, the patient's, and an inbound message's text."""
    return EventFacts(
        type=event.type,
        occurred_at=event.occurred_at,
        facts=event.facts or {},
        date_of_birth=patient.date_of_birth if patient else None,
        gender=patient.gender if patient else None,
        language=patient.preferred_language if patient else None,
        text=text,
    )


async def event_facts(session: AsyncSession, event: DomainEvent, patient: Patient | None) -> EventFacts:
    """`facts_of` the event, reading the message's text when it is about one."""
    text = None
    if (communication_id := message_id(event)) is not None:
        text = await session.scalar(select(Communication.message).where(Communication.id == communication_id))
    return facts_of(event, patient, text)


def startable(patient: Patient | None) -> bool:
    """Whether a journey may start for the patient: an active record, not merged into another."""
    return (
        patient is not None
        and patient.status == PatientStatus.ACTIVE.value
        and patient.merged_into_id is None
    )


def verdict_for(journey: Journey, facts: EventFacts) -> Verdict:
    """The journey's verdict on an event, from its current definition."""
    return evaluate(journey.is_default, parse_trigger_conditions(journey.trigger_conditions), facts)


def as_uuid(value: str | None) -> uuid.UUID | None:
    """`value` as a UUID, or None when it is none (an HL7 visit number, say)."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
