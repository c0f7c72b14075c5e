"""Ticket shapes, as other domains (the patient 360 view) read them."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.enums import TicketPriority, TicketStatus
from domain.schemas import ResponseModel


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
    created_at: datetime
    updated_at: datetime
