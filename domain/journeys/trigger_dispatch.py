"""The trigger dispatcher: domain events start the journeys whose trigger conditions they match.

The worker runs `TriggerDispatcher` as a periodic job (`core.periodic`, under the job's lock). Each round it

1. takes undispatched events (`domain_events`) in order, one transaction each, locked with
   `FOR UPDATE SKIP LOCKED` so two workers never process the same event; matches each against its tenant's
   active journeys (`trigger_conditions`, and `is_default` journeys on `patient.registered`); records one
   `journey_trigger_starts` row per match, which the database keeps to one per (journey, patient, event)
   and to the journey's repeat policy; and starts each start that is due now;
2. starts the pending starts whose delay has passed (a durable not-before time, not a sleep).

Both take their rows the same way (`_each_claimed`, through `core.periodic.claim`). An event whose
dispatch raises rolls back alone, is tried again next round and, after `MAX_ATTEMPTS`, set aside for an
operator (`domain.journeys.set_aside`, `prm events`); a due start that raises stays pending for the next
round.

A start goes through `service.create_instance`, the API's own path (definition snapshot, the workflow's
start recorded with the instance, search attributes), under the idempotency key `trigger:<start id>`. The
instance and its start command commit with the dispatch, so no Temporal is needed here: the start is
delivered after the commit, or by the relay while Temporal is down. A start due later re-checks the
journey when it is due: a journey deactivated (or whose conditions no longer match) in the meantime starts
nothing. Running instances are never touched. Nothing here logs patient data: ids and event types only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import metrics
from core.database import bind_tenant, mark_system, run_after_commit_jobs
from core.errors import DomainError
from core.events import DomainEvent, EventType
from core.gateway import WorkflowGateway, bind_gateway
from core.periodic import claim
from core.workflow_commands import forget_recorded
from domain.enums import RepeatPolicy, TriggerStartStatus
from domain.journeys import service
from domain.journeys.models import Journey, JourneyInstance, JourneyTriggerStart
from domain.journeys.schemas import JourneyInstanceCreate
from domain.journeys.set_aside import MAX_ATTEMPTS
from domain.journeys.trigger_conditions import Verdict
from domain.journeys.trigger_events import as_uuid, candidate_journeys, event_facts, startable, verdict_for
from domain.patients.models import Patient
from domain.scheduling.models import Appointment

log = logging.getLogger(__name__)

DEFAULT_BATCH = 100
TRIGGER_KEY_PREFIX = "trigger:"  # the idempotency key of an instance a trigger started: trigger:<start id>


@dataclass
class DispatchOutcome:
    """What one round did."""

    events: int = 0
    started: int = 0
    scheduled: int = 0
    skipped: int = 0

    def add(self, other: DispatchOutcome) -> None:
        """Fold `other` into this one."""
        self.events += other.events
        self.started += other.started
        self.scheduled += other.scheduled
        self.skipped += other.skipped


# ---- one event ---------------------------------------------------------------------------------------------


async def _already_on_journey(
    session: AsyncSession, journey_id: uuid.UUID, patient_id: uuid.UUID, since: datetime | None
) -> bool:
    """Whether the patient was placed on the journey by hand at all, or since `since` (the starts of
    triggers are the database's to refuse: `journey_trigger_starts`)."""
    by_hand = or_(
        JourneyInstance.idempotency_key.is_(None),
        JourneyInstance.idempotency_key.not_like(f"{TRIGGER_KEY_PREFIX}%"),
    )
    stmt = select(JourneyInstance.id).where(
        JourneyInstance.journey_id == journey_id, JourneyInstance.patient_id == patient_id, by_hand
    )
    if since is not None:
        stmt = stmt.where(JourneyInstance.created_at >= since)
    return await session.scalar(stmt.limit(1)) is not None


async def _record_start(
    session: AsyncSession, journey: Journey, event: DomainEvent, patient: Patient, verdict: Verdict
) -> JourneyTriggerStart | None:
    """Record the start the event earns; None when the repeat policy (the database's) refuses it."""
    if verdict.repeat == RepeatPolicy.NEVER and await _already_on_journey(
        session, journey.id, patient.id, None
    ):
        return None
    if verdict.cooldown is not None and await _already_on_journey(
        session, journey.id, patient.id, event.occurred_at - verdict.cooldown
    ):
        return None
    start_id = uuid.uuid4()
    inserted = await session.scalar(
        insert(JourneyTriggerStart)
        .values(
            id=start_id,
            tenant_id=event.tenant_id,
            journey_id=journey.id,
            patient_id=patient.id,
            event_id=event.id,
            event_type=event.type,
            record_key=event.record_key[:140],
            repeat_policy=verdict.repeat.value,
            occurred_at=event.occurred_at,
            cooldown_until=event.occurred_at + verdict.cooldown if verdict.cooldown else None,
            due_at=event.occurred_at + verdict.delay,
            status=TriggerStartStatus.PENDING.value,
        )
        # Any of the unique keys or the cool-down exclusion: the repeat policy says no (or it exists).
        .on_conflict_do_nothing()
        .returning(JourneyTriggerStart.id)
    )
    if inserted is None:
        return None
    return await session.scalar(select(JourneyTriggerStart).where(JourneyTriggerStart.id == start_id))


def _skip(start: JourneyTriggerStart, reason: str) -> None:
    start.status = TriggerStartStatus.SKIPPED.value
    start.reason = reason[:200]


async def _linked_appointment(session: AsyncSession, event: DomainEvent | None) -> uuid.UUID | None:
    """The appointment the instance is about: the event's. A cancellation's appointment may be gone (a
    DELETE is a cancellation too): the journey starts without the link rather than not at all; any other
    event's vanished appointment makes `create_instance` refuse the start."""
    if event is None or event.subject_type != "appointment":
        return None
    appointment_id = as_uuid(event.subject_id)
    if appointment_id is not None and event.type == EventType.APPOINTMENT_CANCELLED.value:
        return await session.scalar(select(Appointment.id).where(Appointment.id == appointment_id))
    return appointment_id


async def _start_now(session: AsyncSession, start: JourneyTriggerStart, event: DomainEvent | None) -> bool:
    """Place the patient on the journey through the API's path; False (and the start skipped) when the
    journey or the patient no longer qualifies."""
    patient = await session.scalar(select(Patient).where(Patient.id == start.patient_id))
    if not startable(patient):
        _skip(start, "The patient is not active.")
        return False
    appointment_id = await _linked_appointment(session, event)
    encounter_id = as_uuid(event.subject_id) if event and event.subject_type == "encounter" else None
    data = JourneyInstanceCreate(
        journey_id=start.journey_id,
        patient_id=start.patient_id,
        appointment_id=appointment_id,
        encounter_id=encounter_id,
        context={
            "trigger": {
                "event_id": start.event_id,
                "event_type": start.event_type,
                "record": start.record_key,
                "start_id": str(start.id),
            }
        },
    )
    try:
        async with session.begin_nested():
            instance, _ = await service.create_instance(
                session, data, idempotency_key=f"{TRIGGER_KEY_PREFIX}{start.id}"
            )
    except DomainError as exc:  # inactive journey, a template it cannot use, a vanished appointment
        _skip(start, exc.detail)
        return False
    start.status = TriggerStartStatus.STARTED.value
    start.instance_id = instance.id
    return True


async def dispatch_event(session: AsyncSession, event: DomainEvent) -> DispatchOutcome:
    """Match one event against its tenant's journeys and record (and start, when due) what it triggers."""
    outcome = DispatchOutcome(events=1)
    if event.patient_id is None:
        return outcome  # a journey is a patient's: an event about no patient starts none
    journeys = await candidate_journeys(session, event.type)
    if not journeys:
        return outcome
    patient = await session.scalar(select(Patient).where(Patient.id == event.patient_id))
    if patient is None:
        return outcome
    facts = await event_facts(session, event, patient)
    now = datetime.now(UTC)
    for journey in journeys:
        verdict = verdict_for(journey, facts)
        if not verdict.matched:
            continue
        start = await _record_start(session, journey, event, patient, verdict)
        if start is None:
            continue
        if start.due_at > now:
            outcome.scheduled += 1
        elif await _start_now(session, start, event):
            outcome.started += 1
            log.info("event %s (%s) started journey %s", event.id, event.type, journey.id)
        else:
            outcome.skipped += 1
    await session.flush()
    return outcome


async def _due_start(session: AsyncSession, start: JourneyTriggerStart) -> bool:
    """A pending start whose delay has passed: start it if the journey still wants it."""
    journey = await session.scalar(select(Journey).where(Journey.id == start.journey_id))
    event = None
    if start.event_id is not None:
        event = await session.scalar(select(DomainEvent).where(DomainEvent.id == start.event_id))
    if journey is None or not journey.is_active:
        _skip(start, "The journey was deactivated before the start was due.")
        return False
    if event is not None:
        patient = await session.scalar(select(Patient).where(Patient.id == start.patient_id))
        if not verdict_for(journey, await event_facts(session, event, patient)).matched:
            _skip(start, "The journey's trigger conditions changed before the start was due.")
            return False
    return await _start_now(session, start, event)


# ---- rounds ------------------------------------------------------------------------------------------------


Row = TypeVar("Row", DomainEvent, JourneyTriggerStart)


async def _each_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: WorkflowGateway | None,
    model: type[Row],
    select_rows: Callable[[], Select[Row]],
    *,
    batch: int,
    work: Callable[[AsyncSession, Row], Awaitable[None]],
    failed: Callable[[AsyncSession, Any, Exception], Awaitable[Callable[[], None] | None]],
) -> None:
    """Claim the `model` rows `select_rows()` selects, one at a time in its order, each in its own transaction
    and locked with `FOR UPDATE SKIP LOCKED` (two workers never take the same row), and do `work` on each
    in a savepoint. When `work` raises, what it did rolls back, `failed` records why (and may return what
    to do once that is committed) and the row is not claimed again this round. Each transaction commits,
    then the workflow commands it recorded are delivered through `gateway` (the relay's when None)."""
    failed_ids: list[Any] = []
    for _ in range(batch):
        async with sessionmaker() as session:
            mark_system(session)
            stmt = select_rows()
            if failed_ids:
                stmt = stmt.where(model.id.not_in(failed_ids))
            rows = await claim(session, stmt, limit=1)
            if not rows:
                break
            row = rows[0]
            session.info.pop("system", None)
            row_id = row.id
            bind_tenant(session, row.tenant_id)
            if gateway is not None:
                bind_gateway(session, gateway)
            then = None
            try:
                async with session.begin_nested():
                    await work(session, row)
            except Exception as exc:
                session.info.pop("after_commit", None)  # what it recorded was rolled back with it
                forget_recorded(session)
                failed_ids.append(row_id)
                then = await failed(session, row_id, exc)
            await session.commit()
            await run_after_commit_jobs(session)
            if then is not None:
                then()


async def _event_failed(session: AsyncSession, event_id: int, exc: Exception) -> Callable[[], None] | None:
    """Count the failed attempt; at `MAX_ATTEMPTS` set the event aside (a bug to fix, not an outage to wait
    out): marked dispatched with its error's class, logged, counted, for an operator (`set_aside`)."""
    attempts, event_type = (
        await session.execute(
            update(DomainEvent)
            .where(DomainEvent.id == event_id)
            .values(
                dispatch_attempts=DomainEvent.dispatch_attempts + 1,
                dispatch_error=type(exc).__name__[:200],
                dispatched_at=case(
                    (DomainEvent.dispatch_attempts + 1 >= MAX_ATTEMPTS, func.now()), else_=None
                ),
            )
            .returning(DomainEvent.dispatch_attempts, DomainEvent.type)
            .execution_options(synchronize_session=False)
        )
    ).one()
    log.warning(
        "dispatching event %s (%s) failed (attempt %s): %s",
        event_id,
        event_type,
        attempts,
        type(exc).__name__,
    )
    if attempts < MAX_ATTEMPTS:
        return None
    log.error(
        "event %s (%s) set aside after %s failed attempts (%s); once fixed: prm events retry %s",
        event_id,
        event_type,
        attempts,
        type(exc).__name__,
        event_id,
    )
    return metrics.event_set_aside


async def dispatch_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: WorkflowGateway | None,
    *,
    batch: int = DEFAULT_BATCH,
    tenant_id: uuid.UUID | None = None,
) -> DispatchOutcome:
    """Dispatch up to `batch` undispatched events (of one tenant, or all), oldest first, each in its own
    transaction."""
    total = DispatchOutcome()

    async def dispatch(session: AsyncSession, event: DomainEvent) -> None:
        total.add(await dispatch_event(session, event))
        event.dispatched_at = datetime.now(UTC)
        event.dispatch_error = None

    def undispatched() -> Select[DomainEvent]:
        stmt = select(DomainEvent).where(DomainEvent.dispatched_at.is_(None))
        if tenant_id is not None:
            stmt = stmt.where(DomainEvent.tenant_id == tenant_id)
        return stmt.order_by(DomainEvent.id)

    await _each_claimed(
        sessionmaker, gateway, DomainEvent, undispatched, batch=batch, work=dispatch, failed=_event_failed
    )
    return total


async def _start_failed(session: AsyncSession, start_id: uuid.UUID, exc: Exception) -> None:
    """Left pending: the next round tries again."""
    log.warning("a due journey start %s failed: %s", start_id, type(exc).__name__)


async def start_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: WorkflowGateway | None,
    *,
    batch: int = DEFAULT_BATCH,
    tenant_id: uuid.UUID | None = None,
) -> DispatchOutcome:
    """Start up to `batch` pending starts (of one tenant, or all) whose delay has passed, each in its own
    transaction."""
    total = DispatchOutcome()

    async def start(session: AsyncSession, due: JourneyTriggerStart) -> None:
        if await _due_start(session, due):
            total.started += 1
        else:
            total.skipped += 1

    def due() -> Select[JourneyTriggerStart]:
        stmt = select(JourneyTriggerStart).where(
            JourneyTriggerStart.status == TriggerStartStatus.PENDING.value,
            JourneyTriggerStart.due_at <= datetime.now(UTC),
        )
        if tenant_id is not None:
            stmt = stmt.where(JourneyTriggerStart.tenant_id == tenant_id)
        return stmt.order_by(JourneyTriggerStart.due_at)

    await _each_claimed(
        sessionmaker, gateway, JourneyTriggerStart, due, batch=batch, work=start, failed=_start_failed
    )
    return total


class TriggerDispatcher:
    """One round of the dispatcher: start the due delayed starts, then dispatch new events (a periodic job
    of the worker; a test or an operator runs rounds of one tenant)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        gateway: WorkflowGateway | None = None,
        *,
        batch: int = DEFAULT_BATCH,
        tenant_id: uuid.UUID | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.gateway = gateway  # delivers the starts right after each commit; None: the relay does
        self.batch = batch
        self.tenant_id = tenant_id  # None: every tenant (the worker); one: a test, an operator's run

    async def round(self) -> DispatchOutcome:
        """One round; what it did."""
        batch, tenant_id, gateway = self.batch, self.tenant_id, self.gateway
        outcome = await start_due(self.sessionmaker, gateway, batch=batch, tenant_id=tenant_id)
        outcome.add(await dispatch_events(self.sessionmaker, gateway, batch=batch, tenant_id=tenant_id))
        if outcome.started or outcome.scheduled:
            log.info(
                "trigger dispatcher: %d events, %d journeys started, %d scheduled, %d skipped",
                outcome.events,
                outcome.started,
                outcome.scheduled,
                outcome.skipped,
            )
        return outcome

    async def __call__(self) -> bool:
        """A round as a periodic job: True when a full batch of events was dispatched (more may wait)."""
        return (await self.round()).events >= self.batch
