"""The ticket record, with its SLA due times and breach flags."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.enums import TicketPriority, TicketStatus, sql_in


class Ticket(TenantScoped, Base):
    """A follow-up task for the clinic's team about a patient."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(TicketStatus)})", name="status"),
        CheckConstraint(f"priority IN ({sql_in(TicketPriority)})", name="priority"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency_key"),
        Index("ix_tickets_tenant_status_priority", "tenant_id", "status", "priority"),
        Index("ix_tickets_patient", "patient_id"),
        Index("ix_tickets_assigned_to", "assigned_to"),
        Index("ix_tickets_tenant_created", "tenant_id", "created_at"),
        Index("ix_tickets_journey_instance", "journey_instance_id"),
    )

    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE")
    )
    journey_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journey_instances.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default=TicketPriority.MEDIUM.value)
    category: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), nullable=False, default=TicketStatus.OPEN.value)
    assigned_to: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_breached: Mapped[bool] = mapped_column(nullable=False, default=False)
    resolution_breached: Mapped[bool] = mapped_column(nullable=False, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # The workflow that created the ticket (e.g. a journey's); the SLA workflow is always `ticket-<id>`.
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    # When the current SLA cycle began: creation, or the latest reopen.
    sla_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reopened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


TICKET_EVENT_KINDS = ("created", "status_changed", "updated", "responded", "escalated", "sla_paused")


class TicketEvent(TenantScoped, Base):
    """Something that happened to a ticket; `escalated` events are the notifications of missed targets.

    An escalation names who must act: the assignee (`recipient_id`) or, for an unassigned ticket, the
    tenant's fallback queue (`recipient_queue`). Events written by workflows carry a unique key."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in TICKET_EVENT_KINDS)})", name="kind"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_ticket_events_tenant_idempotency_key"),
        Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),
        Index("ix_ticket_events_tenant_kind_created", "tenant_id", "kind", "created_at"),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(100))
    recipient_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    recipient_queue: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
