"""The send step: a message already recorded (and committed) is handed to its provider, once.

This module delivers and never creates: messages are created by `service.send_message` (which records
their workflows' starts through `dispatch`), and the provider comes from `providers.provider_for`.

`deliver` locks the row, returns at once when the message was already sent or has failed (the retry after a
crash finds `provider_message_id` set and sends nothing), calls the provider, and records the outcome with
the forward-only status rule. A transient provider error (5xx, 429, timeout) propagates so the caller's
retry policy tries again; a permanent one (invalid number, unsubscribed, ...) fails the message at once.
Only the delivery workflow's send activity calls it, after the send policy let the message go.

WhatsApp accepts free text only within 24 hours of the patient's last inbound WhatsApp message. Outside that
window a message goes as its approved Twilio Content template (recorded in `meta_data["whatsapp_content"]`
when it was created from a template that has one); without one it fails at once with
`whatsapp_window_closed`, before any provider call, so the delivery workflow falls back to SMS.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from domain.communications import policy, templates
from domain.communications.models import Communication
from domain.communications.provider_contract import OutgoingMessage, ProviderError
from domain.communications.providers import OutboxProvider, provider_for
from domain.communications.repository import CommunicationRepository, advance_status
from domain.communications.service import WHATSAPP_CONTENT
from domain.enums import UNSENT_COMMUNICATION_STATUSES, Channel, CommunicationStatus, Direction

log = logging.getLogger(__name__)
WHATSAPP_WINDOW = timedelta(hours=24)
WINDOW_CLOSED = "whatsapp_window_closed"
WINDOW_CLOSED_MESSAGE = (
    "Outside WhatsApp's 24-hour window a message must use an approved template; this message has no "
    "WhatsApp Content template (set whatsapp_content_sid on its template), so it was not sent on WhatsApp."
)


@dataclass(frozen=True)
class DeliveryOutcome:
    """The message's status after the send step, and whether this call handed it to a provider; and, for
    the caller's metrics, the channel, the provider it went to and why it failed (bounded names, no PHI)."""

    status: str
    sent_now: bool
    channel: str | None = None
    provider: str | None = None
    failure: str | None = None  # rejected (by the provider), opted_out, window_closed


async def deliver(
    session: AsyncSession, communication_id: uuid.UUID, *, at: datetime, settings: Settings
) -> DeliveryOutcome:
    """Send one recorded message at most once; the caller commits. Retryable ProviderErrors propagate."""
    record = await CommunicationRepository(session).for_update(communication_id)
    if record is None:
        return DeliveryOutcome("missing", sent_now=False)
    if record.provider_message_id or record.status not in {s.value for s in UNSENT_COMMUNICATION_STATUSES}:
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
        return DeliveryOutcome(CommunicationStatus.FAILED.value, False, channel.value, failure="opted_out")
    provider = provider_for(channel, settings)
    content: dict[str, Any] | None = None
    # The outbox sends nothing, so WhatsApp's window does not apply to it.
    if channel == Channel.WHATSAPP and provider.name != OutboxProvider.name:
        if not await whatsapp_window_open(session, record.patient_id, at):
            content = _whatsapp_content(record)
            if content is None:
                await advance_status(
                    session,
                    record.id,
                    CommunicationStatus.FAILED,
                    at=at,
                    error_code=WINDOW_CLOSED,
                    error_message=WINDOW_CLOSED_MESSAGE,
                )
                return DeliveryOutcome(
                    CommunicationStatus.FAILED.value, False, channel.value, failure="window_closed"
                )
    outgoing = OutgoingMessage(
        channel=channel,
        recipient=record.recipient or "",
        body=record.message,
        # An email needs a subject: literal text sent without one gets it in the message's language.
        subject=record.subject
        or (templates.phrase("email_subject", record.language) if channel == Channel.EMAIL else None),
        idempotency_key=record.idempotency_key or str(record.id),
        communication_id=str(record.id),
        content_sid=content["sid"] if content else None,
        content_variables=content["variables"] if content else None,
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
        failed = CommunicationStatus.FAILED.value
        return DeliveryOutcome(failed, True, channel.value, provider.name, "rejected")
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
        return DeliveryOutcome(result.status.value, True, channel.value, result.provider, "rejected")
    await advance_status(session, record.id, result.status, at=at, extra=extra)
    return DeliveryOutcome(result.status.value, True, channel.value, result.provider)


async def whatsapp_window_open(session: AsyncSession, patient_id: uuid.UUID | None, at: datetime) -> bool:
    """Whether WhatsApp takes free text to the patient at `at`: their latest inbound WhatsApp message is
    less than 24 hours old."""
    if patient_id is None:
        return False
    last_inbound = await session.scalar(
        select(func.max(Communication.created_at)).where(
            Communication.patient_id == patient_id,
            Communication.direction == Direction.INBOUND.value,
            Communication.channel == Channel.WHATSAPP.value,
        )
    )
    return last_inbound is not None and at - last_inbound < WHATSAPP_WINDOW


def _whatsapp_content(record: Communication) -> dict[str, Any] | None:
    """The Content template recorded on the message (`{"sid", "variables"}`), if any."""
    content = (record.meta_data or {}).get(WHATSAPP_CONTENT)
    if not isinstance(content, dict) or not content.get("sid"):
        return None
    values = content.get("variables") or {}
    # JSONB does not keep key order: put the placeholders back as {"1", "2", ..., "10", ...}.
    ordered = sorted(values.items(), key=lambda item: int(item[0]) if str(item[0]).isdigit() else 0)
    return {"sid": str(content["sid"]), "variables": {str(k): str(v) for k, v in ordered}}


@dataclass(frozen=True)
class GateAnswer:
    """The send gate's answer for one message at one moment; `failure` names why (opted_out, policy) when
    this call recorded the message failed."""

    verdict: str  # send, wait, refuse, done (nothing left to send)
    reason: str
    until: datetime | None = None
    failure: str | None = None


async def pass_gate(session: AsyncSession, record: Communication, now: datetime) -> GateAnswer:
    """Apply the send policy (consent, quiet hours, frequency cap) to `record`, locked by the caller, and
    record the decision on it: a refusal fails it, a wait schedules it for `until`, a go queues it. The
    caller commits."""
    if record.status not in {s.value for s in UNSENT_COMMUNICATION_STATUSES}:
        return GateAnswer("done", "nothing to send")
    if record.provider_message_id:
        return GateAnswer("done", "already sent")
    decision = await policy.evaluate(session, record, now)
    record.meta_data = {**(record.meta_data or {}), "policy": decision.reason}
    failure = None
    if decision.verdict == policy.Verdict.REFUSE:
        code = "opted_out" if "opted out" in decision.reason else "policy"
        if await mark_failed(session, record.id, at=now, code=code, reason=decision.reason):
            failure = code
    elif decision.verdict == policy.Verdict.WAIT and decision.until is not None:
        record.status, record.scheduled_for = "scheduled", decision.until
    else:
        record.status = "queued"
    return GateAnswer(decision.verdict.value, decision.reason, decision.until, failure)


def reports_delivery(channel: str, settings: Settings) -> bool:
    """Whether the provider of `channel` reports delivery (the outbox reports nothing)."""
    return provider_for(Channel(channel), settings).name != OutboxProvider.name


def watches_fallback(channel: str, settings: Settings) -> bool:
    """Whether a message on `channel` falls back to the next channel when it goes undelivered: WhatsApp
    through a provider that reports delivery (the delivery workflow's rule, from its plan)."""
    return channel == Channel.WHATSAPP.value and reports_delivery(channel, settings)


async def send_at_once(
    session: AsyncSession, communication_id: uuid.UUID, *, now: datetime, settings: Settings
) -> DeliveryOutcome | None:
    """Deliver, in the caller's transaction, a message that needs none of its delivery workflow's durable
    waits: not scheduled for later, let through by the send gate now, with no fallback to watch. None when
    it needs its workflow after all (the caller commits, then starts it: a wait the gate decided is
    recorded, so the workflow sleeps it out). Retryable ProviderErrors propagate: the caller rolls back
    and starts the workflow, whose send step retries. Same rules as the workflow's steps (`pass_gate`,
    then `deliver`), so consent, quiet hours, the frequency cap and at-most-once sending all hold."""
    record = await CommunicationRepository(session).for_update(communication_id)
    if record is None:
        return DeliveryOutcome("missing", sent_now=False)
    if record.scheduled_for is not None and record.scheduled_for > now:
        return None
    if watches_fallback(record.channel, settings):
        return None
    answer = await pass_gate(session, record, now)
    if answer.verdict == "done":
        return DeliveryOutcome(record.status, sent_now=False)
    if answer.verdict == "refuse":
        return DeliveryOutcome(record.status, False, record.channel, failure=answer.failure)
    if answer.verdict != "send":
        return None
    return await deliver(session, communication_id, at=now, settings=settings)


async def mark_failed(
    session: AsyncSession, communication_id: uuid.UUID, *, at: datetime, code: str, reason: str
) -> bool:
    """Fail a message that could not be sent (e.g. retries exhausted, patient opted out)."""
    return await advance_status(
        session, communication_id, CommunicationStatus.FAILED, at=at, error_code=code, error_message=reason
    )
