"""Ticket queries (tenant-scoped by the session)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, or_, select

from core.repository import Repository
from domain.tickets.models import Ticket, TicketEvent
from domain.tickets.plan import FINAL_STATUSES


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

    async def lost_sla_starts(self, *, older_than: datetime, limit: int = 500) -> list[Ticket]:
        """Unfinished tickets whose SLA workflow was never confirmed started (e.g. created by a journey)."""
        stmt = (
            select(Ticket)
            .where(
                Ticket.sla_workflow_started_at.is_(None),
                Ticket.status.not_in(FINAL_STATUSES),
                func.coalesce(Ticket.sla_started_at, Ticket.created_at) < older_than,
            )
            .order_by(Ticket.created_at)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())
