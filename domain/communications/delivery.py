"""The send step: a message already recorded (and committed) is handed to its provider, once.

`deliver` locks the row, returns at once when the message was already sent or has failed (the retry after a
crash finds `provider_message_id` set and sends nothing), calls the provider, and records the outcome with
the forward-only status rule. A transient provider error (5xx, 429, timeout) propagates so the caller's
retry policy tries again; a permanent one (invalid number, unsubscribed, ...) fails the message at once.
Only the delivery workflow's send activity calls it, after the send policy let the message go.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.communications import policy
from domain.communications.providers import OutgoingMessage, ProviderError, provider_for
from domain.communications.repository import CommunicationRepository, advance_status
from domain.enums import Channel, CommunicationStatus

log = logging.getLogger(__name__)
SENDABLE = (CommunicationStatus.PENDING, CommunicationStatus.SCHEDULED, CommunicationStatus.QUEUED)


@dataclass(frozen=True)
class DeliveryOutcome:
    """The message's status after the send step, and whether this call handed it to a provider."""

    status: str
    sent_now: bool


async def deliver(session: AsyncSession, communication_id: uuid.UUID, *, at: datetime) -> DeliveryOutcome:
    """Send one recorded message at most once; the caller commits. Retryable ProviderErrors propagate."""
    record = await CommunicationRepository(session).for_update(communication_id)
    if record is None:
        return DeliveryOutcome("missing", sent_now=False)
    if record.provider_message_id or record.status not in {s.value for s in SENDABLE}:
        return DeliveryOutcome(record.status, sent_now=False)
    channel = Channel(record.channel)
    confirmation = bool((record.meta_data or {}).get("consent_confirmation"))
    if record.patient_id and not confirmation and await policy.opted_out(session, record.patient_id, channel):
        await advance_status(
            session,
            record.id,
            CommunicationStatus.FAILED,
            at=at,
            error_code="opted_out",
            error_message=f"The patient opted out of {channel.value} messages.",
        )
        return DeliveryOutcome(CommunicationStatus.FAILED.value, sent_now=False)
    provider = provider_for(channel)
    outgoing = OutgoingMessage(
        channel=channel,
        recipient=record.recipient or "",
        body=record.message,
        subject=record.subject,
        idempotency_key=record.idempotency_key or str(record.id),
        communication_id=str(record.id),
    )
    try:
        result = await provider.send(outgoing)
    except ProviderError as exc:
        if exc.retryable:
            raise
        await advance_status(
            session,
            record.id,
            CommunicationStatus.FAILED,
            at=at,
            error_code=exc.code or "provider_error",
            error_message=str(exc),
            extra={"provider": provider.name},
        )
        return DeliveryOutcome(CommunicationStatus.FAILED.value, sent_now=True)
    extra = {"provider": result.provider, "provider_message_id": result.provider_message_id}
    if result.status == CommunicationStatus.FAILED:
        await advance_status(
            session,
            record.id,
            CommunicationStatus.FAILED,
            at=at,
            error_code=result.error_code,
            error_message=result.error_message,
            extra=extra,
        )
    else:
        await advance_status(session, record.id, result.status, at=at, extra=extra)
    return DeliveryOutcome(result.status.value, sent_now=True)


async def mark_failed(
    session: AsyncSession, communication_id: uuid.UUID, *, at: datetime, code: str, reason: str
) -> bool:
    """Fail a message that could not be sent (e.g. retries exhausted, patient opted out)."""
    return await advance_status(
        session, communication_id, CommunicationStatus.FAILED, at=at, error_code=code, error_message=reason
    )
