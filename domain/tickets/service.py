"""Ticket use cases (minimal for now: creation under a business idempotency key)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import TicketPriority, TicketStatus
from domain.tickets.models import Ticket


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
) -> TicketResult:
    """Open a ticket, or return the one already created under `idempotency_key` (flushes only)."""
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
    return TicketResult(ticket, created=True)
