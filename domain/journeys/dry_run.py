"""The dry run of a journey's trigger: which of the tenant's recent events would start it, and why not the
others, judged by the dispatcher's own rules (`dispatch.verdict_for`) without starting anything."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import DomainEvent, EventType
from core.pagination import Page, PageParams, paginate
from domain.communications.models import Communication
from domain.journeys.models import JourneyTriggerStart
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import TriggerStartView, TriggerTestItem, TriggerTestResponse
from domain.journeys.trigger_events import facts_of, message_id, startable, verdict_for
from domain.patients.models import Patient

MAX_WINDOW_DAYS = 90


async def test_trigger(
    session: AsyncSession,
    journey_id: uuid.UUID,
    page: PageParams,
    *,
    days: int = 7,
    event_type: EventType | None = None,
) -> TriggerTestResponse:
    """The session tenant's events of the last `days` days (newest first, one page), each judged against
    the journey's current trigger conditions; 404 when the journey is not the tenant's."""
    journey = await JourneyRepository(session).get_or_404(journey_id)
    since = datetime.now(UTC) - timedelta(days=min(days, MAX_WINDOW_DAYS))
    stmt = (
        select(DomainEvent)
        .where(DomainEvent.occurred_at >= since)
        .order_by(DomainEvent.occurred_at.desc(), DomainEvent.id.desc())
    )
    if event_type is not None:
        stmt = stmt.where(DomainEvent.type == event_type.value)
    events, total = await paginate(session, stmt, page)
    patient_ids = {e.patient_id for e in events if e.patient_id is not None}
    patients = {
        p.id: p for p in (await session.scalars(select(Patient).where(Patient.id.in_(patient_ids)))).all()
    }
    message_ids = [i for e in events if (i := message_id(e)) is not None]
    texts: dict[uuid.UUID | None, str | None] = dict(
        (
            await session.execute(
                select(Communication.id, Communication.message).where(Communication.id.in_(message_ids))
            )
        ).all()
    )
    starts = {
        s.event_id: s
        for s in (
            await session.scalars(
                select(JourneyTriggerStart).where(
                    JourneyTriggerStart.journey_id == journey.id,
                    JourneyTriggerStart.event_id.in_([e.id for e in events]),
                )
            )
        ).all()
    }
    items = []
    for event in events:
        patient = patients.get(event.patient_id) if event.patient_id else None
        verdict = verdict_for(journey, facts_of(event, patient, texts.get(message_id(event))))
        reasons = list(verdict.reasons)
        if patient is None:
            reasons.append("the event names no patient of the tenant")
        elif not startable(patient):
            reasons.append("the patient is not active")
        start = starts.get(event.id)
        items.append(
            TriggerTestItem(
                event_id=event.id,
                type=event.type,
                occurred_at=event.occurred_at,
                source=event.source,
                patient_id=event.patient_id,
                subject_type=event.subject_type,
                subject_id=event.subject_id,
                facts=event.facts or {},
                matched=not reasons,
                reasons=reasons,
                would_start_at=event.occurred_at + verdict.delay if not reasons else None,
                repeat=verdict.repeat if not reasons else None,
                start=TriggerStartView.model_validate(start) if start else None,
            )
        )
    position = Page[TriggerTestItem].build(items, total, page)
    return TriggerTestResponse(
        **position.model_dump(exclude={"items"}),
        items=items,
        journey_id=journey.id,
        is_active=journey.is_active,
        is_default=journey.is_default,
        trigger_conditions=journey.trigger_conditions,
        window_start=since,
    )
