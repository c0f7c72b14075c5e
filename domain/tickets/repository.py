"""Ticket queries (tenant-scoped by the session)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, or_, select

from core.repository import Repository
from domain.tickets.models import Ticket, TicketEvent


class TicketRepository(Repository[Ticket]):
    """Queries over tickets and their events."""

    model = Ticket
    label = "Ticket"

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        status: str | None = None,
        priority: str | None = None,
        assigned_to: uuid.UUID | None = None,
        category: str | None = None,
        journey_instance_id: uuid.UUID | None = None,
        breached: bool | None = None,
    ) -> Select[Ticket]:
        """Tickets matching the filters, newest first."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(Ticket.patient_id == patient_id)
        if status:
            stmt = stmt.where(Ticket.status == status)
        if priority:
            stmt = stmt.where(Ticket.priority == priority)
        if assigned_to is not None:
            stmt = stmt.where(Ticket.assigned_to == assigned_to)
        if category:
            stmt = stmt.where(Ticket.category == category)
        if journey_instance_id is not None:
            stmt = stmt.where(Ticket.journey_instance_id == journey_instance_id)
        if breached is not None:
            either = or_(Ticket.response_breached, Ticket.resolution_breached)
            stmt = stmt.where(either if breached else ~either)
        return stmt.order_by(Ticket.created_at.desc(), Ticket.id)

    async def for_update(self, ticket_id: uuid.UUID) -> Ticket | None:
        """The ticket, row-locked until the transaction ends (SLA writes and API edits serialize)."""
        return await self.session.scalar(self.base().where(Ticket.id == ticket_id).with_for_update())

    async def events(self, ticket_id: uuid.UUID) -> list[TicketEvent]:
        """The ticket's history, oldest first."""
        stmt = (
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.created_at, TicketEvent.id)
        )
        return list((await self.session.scalars(stmt)).all())
