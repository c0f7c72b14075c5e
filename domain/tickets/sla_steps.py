"""The SLA workflow's steps on the ticket: set the due times, escalate a missed target, shift for a pause.

What the SLA workflow's activities do, each idempotent (an escalation or a pause shift is claimed once by
its event's idempotency key) and each re-reading the ticket under a row lock, so a step that runs late or
twice acts on the ticket as it is. Apart from `service` because the workflow, not a user, drives these:
nothing here checks a transition or records who acted.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.database import after_commit
from core.errors import NotFound
from domain.tenants.schemas import TenantSettings
from domain.tenants.service import settings_of, tenant_of
from domain.tickets import sla
from domain.tickets.models import Ticket, TicketEvent
from domain.tickets.plan import (
    FALLBACK_QUEUE,
    FINAL_STATUSES,
    PAUSED_STATUS,
    BreachInput,
    PauseInput,
    SlaState,
)
from domain.tickets.repository import TicketRepository


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


async def _calendar(session: AsyncSession, ticket: Ticket) -> tuple[sla.BusinessCalendar, TenantSettings]:
    tenant = await tenant_of(session, ticket.tenant_id or session.info["tenant_id"])
    if tenant is None:
        raise NotFound("Tenant not found.")
    settings = settings_of(tenant)
    return sla.calendar_for(settings, tenant.timezone), settings


async def set_due_times(session: AsyncSession, ticket: Ticket) -> None:
    """Fill in the current cycle's due times that are unset (a response already given has none), in the
    caller's transaction. A ticket opened or reopened gets them at once (before its INSERT or UPDATE), and
    its SLA workflow starts from them (`TicketSlaInput.state`)."""
    if ticket.resolution_due_at is None or (
        ticket.response_due_at is None and ticket.first_response_at is None
    ):
        calendar, settings = await _calendar(session, ticket)
        opened = ticket.sla_started_at or ticket.created_at
        due = sla.due_times(calendar, settings, ticket.priority, opened)
        if ticket.response_due_at is None and ticket.first_response_at is None:
            ticket.response_due_at = due.response_due_at
        if ticket.resolution_due_at is None:
            ticket.resolution_due_at = due.resolution_due_at


async def begin_sla(session: AsyncSession, ticket_id: str) -> SlaState:
    """Set the current cycle's due times if unset; the state (flushes only). Only the SLA workflows whose
    input carries no state take this step (started before tickets got their due times when opened)."""
    ticket = await _locked(session, ticket_id)
    await set_due_times(session, ticket)
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
        after_commit(session, metrics.later(metrics.sla_breached, data.kind))
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
