"""Ticket use cases: opening (from the API or a journey), the status lifecycle, and the SLA workflow.

Each unfinished ticket has one SLA workflow, `ticket-<id>`, started after the commit that opened (or
reopened) it; the API tells it about status changes with the `ticket_changed` signal, sent after the commit.
A lost start (Temporal down, or a ticket a journey's activity created) is picked up by
`reconcile_ticket_sla_starts`; a lost signal is corrected when the workflow's next timer fires, because
the breach activity re-reads the ticket before it escalates.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.database import after_commit, scope_to
from core.errors import Conflict, NotFound, Unprocessable
from core.temporal import RPC_TIMEOUT, SA_PATIENT_ID, SA_TENANT_ID, TemporalAccess
from core.workflow_commands import record_signal
from domain.enums import TicketPriority, TicketStatus
from domain.journeys.models import JourneyInstance
from domain.patients.models import Patient
from domain.schemas import changes
from domain.tenants.models import Tenant
from domain.tenants.service import settings_of
from domain.tickets import sla
from domain.tickets.models import Ticket, TicketEvent
from domain.tickets.plan import (
    FALLBACK_QUEUE,
    FINAL_STATUSES,
    PAUSED_STATUS,
    SIGNAL_CHANGED,
    WORKFLOW_NAME,
    BreachInput,
    PauseInput,
    SlaState,
    TicketChanged,
    TicketSlaInput,
    ticket_workflow_id,
)
from domain.tickets.repository import TicketRepository
from domain.tickets.schemas import TicketCreate, TicketUpdate

log = logging.getLogger(__name__)

S = TicketStatus
# Where each status may go. Reopening (resolved/closed -> open) starts a new SLA cycle.
TRANSITIONS: dict[str, set[str]] = {
    S.OPEN: {S.IN_PROGRESS, S.WAITING_ON_PATIENT, S.RESOLVED, S.CLOSED},
    S.IN_PROGRESS: {S.WAITING_ON_PATIENT, S.RESOLVED, S.CLOSED},
    S.WAITING_ON_PATIENT: {S.IN_PROGRESS, S.RESOLVED, S.CLOSED},
    S.RESOLVED: {S.CLOSED, S.OPEN},
    S.CLOSED: {S.OPEN},
}


@dataclass
class TicketResult:
    """The ticket, and whether this call created it (False: it already existed under the key)."""

    ticket: Ticket
    created: bool


async def by_idempotency_key(session: AsyncSession, key: str) -> Ticket | None:
    """The ticket created under `key` in the session's tenant, if any."""
    return await session.scalar(select(Ticket).where(Ticket.idempotency_key == key))


async def create_ticket(
    session: AsyncSession,
    *,
    title: str,
    patient_id: uuid.UUID | None = None,
    description: str | None = None,
    priority: TicketPriority = TicketPriority.MEDIUM,
    category: str | None = None,
    assigned_to: uuid.UUID | None = None,
    journey_instance_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    workflow_id: str | None = None,
    actor: str | None = None,
) -> TicketResult:
    """Open a ticket, or return the one already created under `idempotency_key` (flushes only).

    No SLA workflow is started here (callers without Temporal, like journey activities, use this): the API
    starts it after its commit, and `reconcile_ticket_sla_starts` starts it for everyone else."""
    if idempotency_key:
        existing = await by_idempotency_key(session, idempotency_key)
        if existing is not None:
            return TicketResult(existing, created=False)
    ticket = Ticket(
        patient_id=patient_id,
        journey_instance_id=journey_instance_id,
        title=title,
        description=description,
        priority=TicketPriority(priority).value,
        category=category,
        status=TicketStatus.OPEN.value,
        assigned_to=assigned_to,
        idempotency_key=idempotency_key,
        workflow_id=workflow_id,
        sla_started_at=datetime.now(UTC),
    )
    try:
        async with session.begin_nested():
            session.add(ticket)
            await session.flush()
    except IntegrityError:
        existing = await by_idempotency_key(session, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return TicketResult(existing, created=False)
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind="created",
            actor=actor or (workflow_id and "workflow"),
            created_at=datetime.now(UTC),  # the clock, not the transaction's start: events of one
        )  # request keep their order
    )
    await session.flush()
    return TicketResult(ticket, created=True)


# ---- the API's use cases --------------------------------------------------------------------------


async def open_ticket(
    session: AsyncSession, data: TicketCreate, access: TemporalAccess, *, actor: str
) -> Ticket:
    """Open a ticket about one of the tenant's patients; its SLA workflow starts after the commit."""
    patient_id = data.patient_id
    if patient_id is not None:
        if await session.scalar(select(Patient.id).where(Patient.id == patient_id)) is None:
            raise NotFound("Patient not found.")
    if data.journey_instance_id is not None:
        instance = await session.scalar(
            select(JourneyInstance).where(JourneyInstance.id == data.journey_instance_id)
        )
        if instance is None:
            raise NotFound("Journey instance not found.")
        if patient_id is not None and instance.patient_id != patient_id:
            raise Unprocessable("The journey instance belongs to another patient.")
        patient_id = instance.patient_id
    result = await create_ticket(
        session,
        title=data.title,
        description=data.description,
        priority=data.priority,
        category=data.category,
        assigned_to=data.assigned_to,
        patient_id=patient_id,
        journey_instance_id=data.journey_instance_id,
        actor=actor,
    )
    ticket = result.ticket
    await session.refresh(ticket)
    _start_after_commit(session, access, ticket, restart=False)
    return ticket


async def _record(
    session: AsyncSession,
    ticket: Ticket,
    kind: str,
    *,
    actor: str | None,
    details: dict | None = None,
) -> None:
    event = TicketEvent(
        ticket_id=ticket.id, kind=kind, actor=actor, details=details or {}, created_at=datetime.now(UTC)
    )
    session.add(event)
    await session.flush()


def _check_transition(current: str, target: str) -> None:
    if target != current and target not in TRANSITIONS[current]:
        raise Conflict(f"A ticket cannot move from {current} to {target}.")


async def update_ticket(
    session: AsyncSession, access: TemporalAccess, ticket_id: uuid.UUID, data: TicketUpdate, *, actor: str
) -> Ticket:
    """Apply a PATCH: fields, status moves (409 when impossible), first response; tell the SLA workflow."""
    repo = TicketRepository(session)
    ticket = await repo.for_update(ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found.")
    sent = changes(data)
    for field in ("title", "priority", "status", "responded"):
        if field in sent and sent[field] is None:
            raise Unprocessable(f"{field} cannot be null.")
    now = datetime.now(UTC)
    previous = ticket.status
    target = sent.pop("status", previous)
    responded = sent.pop("responded", False)
    _check_transition(previous, target)
    for field, value in sent.items():
        setattr(ticket, field, value.value if isinstance(value, TicketPriority) else value)
    if sent:
        await _record(session, ticket, "updated", actor=actor, details={"fields": sorted(sent)})
    reopened = previous in FINAL_STATUSES and target == S.OPEN
    newly_responded = ticket.first_response_at is None and (
        responded or (previous == S.OPEN and target != S.OPEN)
    )
    if newly_responded:
        ticket.first_response_at = now
        await _record(session, ticket, "responded", actor=actor)
    if target != previous:
        ticket.status = target
        if target == S.RESOLVED:
            ticket.resolved_at = now
        elif target == S.CLOSED:
            ticket.closed_at = now
            ticket.resolved_at = ticket.resolved_at or now
        elif reopened:
            ticket.reopened_at = ticket.sla_started_at = now
            ticket.resolved_at = ticket.closed_at = None
            ticket.resolution_due_at = None  # the new cycle's workflow sets it
            ticket.resolution_breached = False
            ticket.sla_workflow_started_at = None
        await _record(
            session, ticket, "status_changed", actor=actor, details={"from": previous, "to": target}
        )
    await session.flush()
    await session.refresh(ticket)
    if reopened:
        _start_after_commit(session, access, ticket, restart=True)
    elif target != previous or newly_responded:
        _signal_after_commit(session, ticket)
    return ticket


async def ticket_events(session: AsyncSession, ticket_id: uuid.UUID) -> list[TicketEvent]:
    """A ticket's history (404 when it is not the tenant's)."""
    repo = TicketRepository(session)
    ticket = await repo.get_or_404(ticket_id)
    return await repo.events(ticket.id)


# ---- the SLA workflow, from the API's side --------------------------------------------------------


def search_attributes_for(ticket: Ticket) -> TypedSearchAttributes:
    """The ids operators filter on in the Temporal UI (never PHI)."""
    pairs: list[SearchAttributePair] = [SearchAttributePair(SA_TENANT_ID, str(ticket.tenant_id))]
    if ticket.patient_id is not None:
        pairs.append(SearchAttributePair(SA_PATIENT_ID, str(ticket.patient_id)))
    return TypedSearchAttributes(pairs)


async def start_sla_workflow(access: TemporalAccess, ticket: Ticket, *, restart: bool = False) -> bool:
    """Start the ticket's SLA workflow; False when it is already running. `restart` replaces a running one."""
    client = await access.get_client()
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            TicketSlaInput(tenant_id=str(ticket.tenant_id), ticket_id=str(ticket.id)),
            id=ticket_workflow_id(ticket.id),
            task_queue=access.task_queue,
            search_attributes=search_attributes_for(ticket),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=(
                WorkflowIDConflictPolicy.TERMINATE_EXISTING if restart else WorkflowIDConflictPolicy.FAIL
            ),
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def _start_after_commit(
    session: AsyncSession, access: TemporalAccess, ticket: Ticket, *, restart: bool
) -> None:
    ticket_id = ticket.id

    async def start() -> None:
        try:
            await start_sla_workflow(access, ticket, restart=restart)
        except Exception as exc:  # the ticket is saved; the reconciler starts the workflow later
            log.warning("could not start the SLA workflow of ticket %s: %s", ticket_id, type(exc).__name__)

    after_commit(session, start)


def _signal_after_commit(session: AsyncSession, ticket: Ticket) -> None:
    """Record, with the change, the `ticket_changed` signal to the ticket's SLA workflow (delivered after
    the commit and again until Temporal has it; dropped when the workflow is not running, which reads the
    ticket when it starts)."""
    record_signal(
        session,
        workflow_id=ticket_workflow_id(ticket.id),
        signal=SIGNAL_CHANGED,
        arg=TicketChanged(status=ticket.status, responded=ticket.first_response_at is not None),
    )


async def reconcile_ticket_sla_starts(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: TemporalAccess,
    *,
    older_than_seconds: float = 60.0,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Start the SLA workflows of unfinished tickets whose start was never confirmed; how many started."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with sessionmaker() as session:
        scope_to(session, tenant_id)
        lost = await TicketRepository(session).lost_sla_starts(older_than=cutoff)
    started = 0
    for ticket in lost:
        if await start_sla_workflow(access, ticket):
            started += 1
            log.info("started the lost SLA workflow of ticket %s", ticket.id)
    return started


# ---- the SLA workflow's activities ----------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def sla_state(ticket: Ticket) -> SlaState:
    """The ticket's SLA state as the workflow sees it."""
    return SlaState(
        status=ticket.status,
        responded=ticket.first_response_at is not None,
        response_due_at=_iso(ticket.response_due_at),
        resolution_due_at=_iso(ticket.resolution_due_at),
        response_breached=ticket.response_breached,
        resolution_breached=ticket.resolution_breached,
        cycle=_iso(ticket.sla_started_at or ticket.created_at) or "",
    )


async def _locked(session: AsyncSession, ticket_id: str) -> Ticket:
    ticket = await TicketRepository(session).for_update(uuid.UUID(ticket_id))
    if ticket is None:
        raise NotFound("Ticket not found.")
    return ticket


async def _calendar(session: AsyncSession, ticket: Ticket) -> tuple[sla.BusinessCalendar, Tenant]:
    tenant = await session.get(Tenant, ticket.tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found.")
    return sla.calendar_for(settings_of(tenant), tenant.timezone), tenant


async def begin_sla(session: AsyncSession, ticket_id: str) -> SlaState:
    """Set the current cycle's due times if unset, mark the workflow started; the state (flushes only)."""
    ticket = await _locked(session, ticket_id)
    if ticket.resolution_due_at is None or (
        ticket.response_due_at is None and ticket.first_response_at is None
    ):
        calendar, tenant = await _calendar(session, ticket)
        opened = ticket.sla_started_at or ticket.created_at
        due = sla.due_times(calendar, settings_of(tenant), ticket.priority, opened)
        if ticket.response_due_at is None and ticket.first_response_at is None:
            ticket.response_due_at = due.response_due_at
        if ticket.resolution_due_at is None:
            ticket.resolution_due_at = due.resolution_due_at
    if ticket.sla_workflow_started_at is None:
        ticket.sla_workflow_started_at = datetime.now(UTC)
    await session.flush()
    return sla_state(ticket)


async def _claim(session: AsyncSession, ticket: Ticket, kind: str, key: str, **fields: object) -> bool:
    """Insert the event under its unique key; False when it already exists (the step was done before)."""
    stmt = (
        insert(TicketEvent)
        .values(
            id=uuid.uuid4(),
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.id,
            kind=kind,
            idempotency_key=key,
            **fields,
        )
        .on_conflict_do_nothing(constraint="uq_ticket_events_tenant_idempotency_key")
        .returning(TicketEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def record_breach(session: AsyncSession, data: BreachInput) -> SlaState:
    """Escalate a missed target once: flag the breach, raise the priority a step, notify; the new state.

    Re-reads the ticket first: a target met, a pause or a resolution the workflow has not heard of yet
    (a lost signal) means there is nothing to escalate, and the returned state tells the workflow so."""
    ticket = await _locked(session, data.ticket_id)
    at = datetime.fromisoformat(data.at)
    if ticket.status in FINAL_STATUSES or ticket.status == PAUSED_STATUS:
        return sla_state(ticket)
    if data.kind == "response":
        due, already, met = (
            ticket.response_due_at,
            ticket.response_breached,
            ticket.first_response_at is not None,
        )
    else:
        due, already, met = ticket.resolution_due_at, ticket.resolution_breached, False
    if met or already or due is None or due > at:
        return sla_state(ticket)
    before = ticket.priority
    after = sla.escalated(before).value
    notified = (
        {"recipient_id": ticket.assigned_to} if ticket.assigned_to else {"recipient_queue": FALLBACK_QUEUE}
    )
    details = {"target": data.kind, "due_at": due.isoformat(), "priority_from": before, "priority_to": after}
    if await _claim(session, ticket, "escalated", data.key, actor="sla", details=details, **notified):
        if data.kind == "response":
            ticket.response_breached = True
        else:
            ticket.resolution_breached = True
        ticket.priority = after
        await session.flush()
    return sla_state(ticket)


async def shift_for_pause(session: AsyncSession, data: PauseInput) -> SlaState:
    """Move the pending due times by the business time the ticket spent waiting on the patient (once)."""
    ticket = await _locked(session, data.ticket_id)
    paused_from, paused_to = datetime.fromisoformat(data.paused_from), datetime.fromisoformat(data.paused_to)
    calendar, _ = await _calendar(session, ticket)
    moves: dict[str, datetime] = {}
    if ticket.response_due_at and not ticket.response_breached and ticket.first_response_at is None:
        moves["response_due_at"] = sla.shift_for_pause(
            calendar, ticket.response_due_at, paused_from, paused_to
        )
    if ticket.resolution_due_at and not ticket.resolution_breached:
        moves["resolution_due_at"] = sla.shift_for_pause(
            calendar, ticket.resolution_due_at, paused_from, paused_to
        )
    details = {"paused_from": data.paused_from, "paused_to": data.paused_to}
    details.update({k: v.isoformat() for k, v in moves.items()})
    if await _claim(session, ticket, "sla_paused", data.key, actor="sla", details=details):
        for field, value in moves.items():
            setattr(ticket, field, value)
        await session.flush()
    return sla_state(ticket)
