"""The send step: a message already recorded (and committed) is handed to its provider, once.

`deliver` locks the row, returns at once when the message was already sent or has failed (the retry after a
crash finds `provider_message_id` set and sends nothing), calls the provider, and records the outcome with
the forward-only status rule. A transient provider error (5xx, 429, timeout) propagates so the caller's
retry policy tries again; a permanent one (invalid number, unsubscribed, ...) fails the message at once.

`deliver_after_commit` is how `service.send_message` (journeys, appointment reminders, booking chat) sends
without ever calling the provider before its record is durable: the delivery runs in the caller's
`session.commit()`, after the COMMIT, in a fresh transaction.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from core.database import bind_tenant
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


_PENDING_KEY = "communications_to_deliver"
_HOOKED_KEY = "communications_delivery_hook"


async def _deliver_committed(
    engine: AsyncEngine, items: list[tuple[uuid.UUID, uuid.UUID]], *, reraise: bool
) -> None:
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    for tenant_id, communication_id in items:
        async with sessionmaker() as session:
            bind_tenant(session, tenant_id)
            try:
                await deliver(session, communication_id, at=datetime.now(UTC))
                await session.commit()
            except ProviderError as exc:
                await session.rollback()
                log.warning("message %s not sent yet (%s); it stays queued", communication_id, exc)
                if reraise:
                    raise


def deliver_after_commit(session: AsyncSession, tenant_id: uuid.UUID, communication_id: uuid.UUID) -> None:
    """Send the recorded message right after `session` commits (nothing is sent if it rolls back).

    Inside a Temporal activity a transient provider error surfaces from the commit, so the activity is
    retried and finds the (now durable) record still queued; elsewhere the message stays queued and is
    logged for the delivery reconciler."""
    pending: list[tuple[uuid.UUID, uuid.UUID]] = session.info.setdefault(_PENDING_KEY, [])
    if (tenant_id, communication_id) not in pending:
        pending.append((tenant_id, communication_id))
    if session.info.get(_HOOKED_KEY):
        return
    session.info[_HOOKED_KEY] = True
    engine = session.bind
    assert isinstance(engine, AsyncEngine)

    def after_commit(sync_session: Session) -> None:
        items = sync_session.info.pop(_PENDING_KEY, [])
        if items:
            await_only(_deliver_committed(engine, items, reraise=_in_activity()))

    # Ids left by a rolled-back transaction are harmless: their rows do not exist, so nothing is sent.
    event.listen(session.sync_session, "after_commit", after_commit)


def _in_activity() -> bool:
    from temporalio import activity

    return activity.in_activity()
