"""Communication shapes, as other domains (the patient 360 view, a patient's conversations) read them."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.enums import Channel, CommunicationStatus, Direction
from domain.schemas import ResponseModel


class CommunicationResponse(ResponseModel):
    """One message, inbound or outbound, with its delivery state."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    patient_id: uuid.UUID | None
    journey_instance_id: uuid.UUID | None
    appointment_id: uuid.UUID | None
    direction: Direction
    channel: Channel
    recipient: str | None
    sender: str | None
    subject: str | None
    message: str
    template_name: str | None
    status: CommunicationStatus
    is_urgent: bool
    scheduled_for: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    provider: str | None
    created_at: datetime
    updated_at: datetime
