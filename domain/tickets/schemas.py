"""Ticket shapes, as other domains (the patient 360 view) read them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from core.pagination import Page
from domain.enums import TicketPriority, TicketStatus
from domain.schemas import NotNull, RequestModel, ResponseModel


class TicketResponse(ResponseModel):
    """A follow-up task about a patient, with its SLA state."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    patient_id: uuid.UUID | None
    journey_instance_id: uuid.UUID | None
    title: str
    description: str | None
    priority: TicketPriority
    category: str | None
    status: TicketStatus
    assigned_to: uuid.UUID | None
    resolution_notes: str | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    response_breached: bool
    resolution_breached: bool
    sla_started_at: datetime | None = None
    reopened_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TicketCreate(RequestModel):
    """Body of `POST /tickets`; `tenant_id` may be omitted and must otherwise be the caller's."""

    tenant_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    journey_instance_id: uuid.UUID | None = None
    title: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=10_000)
    priority: TicketPriority = TicketPriority.MEDIUM
    category: str | None = Field(default=None, min_length=1, max_length=64)
    assigned_to: uuid.UUID | None = None


class TicketUpdate(RequestModel):
    """Body of `PATCH /tickets/{id}`: only the fields sent change.

    `status` follows the lifecycle (open -> in_progress / waiting_on_patient -> resolved -> closed;
    resolved or closed -> open reopens); an impossible move is 409. `responded: true` records the first
    response without changing the status (leaving `open` records it too)."""

    title: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=10_000)
    priority: Annotated[TicketPriority | None, NotNull] = None
    category: str | None = Field(default=None, min_length=1, max_length=64)
    status: Annotated[TicketStatus | None, NotNull] = None
    assigned_to: uuid.UUID | None = None
    resolution_notes: str | None = Field(default=None, max_length=10_000)
    responded: Annotated[bool | None, NotNull] = None


class TicketListResponse(Page[TicketResponse]):
    """A page of tickets."""


class TicketEventResponse(ResponseModel):
    """One entry of a ticket's history (status changes, escalations, SLA pauses)."""

    id: uuid.UUID
    ticket_id: uuid.UUID
    kind: str
    actor: str | None
    recipient_id: uuid.UUID | None
    recipient_queue: str | None
    details: dict[str, Any]
    created_at: datetime
