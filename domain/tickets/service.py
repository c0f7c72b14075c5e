"""Ticket use cases: opening (from the API or a journey), the status lifecycle and the ticket's history.

A ticket opened (from the API or a journey) or reopened here gets the start of its SLA workflow recorded in
the same transaction, and a status change the signal to it (both in `sla_workflow`, both delivered after the
commit through `core.workflow_commands`); the workflow's own steps are in `sla_steps`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound, Unprocessable
from core.events import EventType, emit
from domain.enums import TicketPriority, TicketStatus
from domain.patients.models import Patient
from domain.schemas import changes
from domain.tickets import sla_steps, sla_workflow
from domain.tickets.models import Ticket, TicketEvent
from domain.tickets.plan import FINAL_STATUSES
from domain.tickets.repository import TicketRepository
from domain.tickets.schemas import TicketCreate, TicketUpdate

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

    A new ticket's SLA workflow start is recorded with it, whoever opens it (the API, a journey's step)."""
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
    await sla_steps.set_due_times(session, ticket)
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
    sla_workflow.record_sla_start(session, ticket, restart=False)
    await session.flush()
    return TicketResult(ticket, created=True)


# ---- the API's use cases --------------------------------------------------------------------------


async def open_ticket(
    session: AsyncSession,
    data: TicketCreate,
    *,
    actor: str,
    journey_patient_id: uuid.UUID | None = None,
) -> Ticket:
    """Open a ticket about one of the tenant's patients (its SLA workflow's start recorded with it).

    With `data.journey_instance_id`, the caller has found that instance in the tenant and passes its
    patient as `journey_patient_id` (tickets read no journeys table)."""
    patient_id = data.patient_id
    if patient_id is not None:
        if await session.scalar(select(Patient.id).where(Patient.id == patient_id)) is None:
            raise NotFound("Patient not found.")
    if data.journey_instance_id is not None:
        if patient_id is not None and journey_patient_id != patient_id:
            raise Unprocessable(
                "The journey instance belongs to another patient.", loc=("body", "journey_instance_id")
            )
        patient_id = journey_patient_id
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
    session: AsyncSession, ticket_id: uuid.UUID, data: TicketUpdate, *, actor: str
) -> Ticket:
    """Apply a PATCH: fields, status moves (409 when impossible), first response; tell the SLA workflow."""
    repo = TicketRepository(session)
    ticket = await repo.for_update(ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found.")
    sent = changes(data)
    for field in ("title", "priority", "status", "responded"):
        if field in sent and sent[field] is None:
            raise Unprocessable(f"{field} cannot be null.", loc=("body", field))
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
            ticket.resolution_due_at = None  # the new cycle's, set below
            ticket.resolution_breached = False
            await sla_steps.set_due_times(session, ticket)
        await _record(
            session, ticket, "status_changed", actor=actor, details={"from": previous, "to": target}
        )
        if target == S.RESOLVED or (target == S.CLOSED and previous != S.RESOLVED):
            await emit(
                session,
                tenant_id=ticket.tenant_id,
                type=EventType.TICKET_RESOLVED,
                patient_id=ticket.patient_id,
                subject=("ticket", ticket.id),
                facts={"category": ticket.category, "priority": ticket.priority, "status": target},
            )
    await session.flush()
    await session.refresh(ticket)
    if reopened:
        sla_workflow.record_sla_start(session, ticket, restart=True)
    elif target != previous or newly_responded:
        sla_workflow.record_sla_signal(session, ticket)
    return ticket


async def ticket_events(session: AsyncSession, ticket_id: uuid.UUID) -> list[TicketEvent]:
    """A ticket's history (404 when it is not the tenant's)."""
    repo = TicketRepository(session)
    ticket = await repo.get_or_404(ticket_id)
    return await repo.events(ticket.id)
