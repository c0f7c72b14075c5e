"""What provider webhooks change: delivery status (Twilio, SendGrid) and inbound messages (Twilio).

The tenant is never read from the request: a status finds its message by the provider's message id (or the
communication id we put in SendGrid's `custom_args`, which come back inside the signed payload), and an
inbound message finds its patient through the last message we sent to that number, else the one patient
with that phone. Status moves go through `repository.advance_status`, so repeats and out-of-order callbacks
never move a message backwards. Nothing here logs a number or a message body.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import bind_tenant, mark_system
from core.events import EventSource, EventType, emit
from core.phones import to_e164
from domain.communications import policy, service
from domain.communications.models import Communication, WebhookEvent
from domain.communications.repository import advance_status, record_accepted
from domain.enums import Channel, CommunicationStatus, Direction
from domain.patients.models import Patient

log = logging.getLogger(__name__)
S = CommunicationStatus

TWILIO_STATUS = {
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.READ,
    "undelivered": S.FAILED,
    "failed": S.FAILED,
}
SENDGRID_STATUS = {
    "delivered": S.DELIVERED,
    "open": S.READ,
    "click": S.READ,
    "bounce": S.FAILED,
    "dropped": S.FAILED,
}


# (session, patient id, stored message id): each records what it needs in the message's transaction.
ReplyHandler = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[Any]]


@dataclass
class ReplyRouting:
    """Who hears of a stored inbound message, passed in by the API (the domains above communications):
    the journeys waiting for a reply, the booking conversation or waitlist offer it may answer, and the
    analytics that score its sentiment once, at write time."""

    notify_journeys: ReplyHandler
    route_booking: ReplyHandler
    score: Callable[[AsyncSession, Communication], Awaitable[Any]]


async def first_time(session: AsyncSession, provider: str, event_id: str) -> bool:
    """Record a provider event id; False when it was already processed (a repeat)."""
    stmt = (
        insert(WebhookEvent)
        .values(id=uuid.uuid4(), provider=provider, event_id=event_id[:200])
        .on_conflict_do_nothing(constraint="uq_webhook_events_provider_event_id")
        .returning(WebhookEvent.id)
    )
    return (await session.execute(stmt)).scalar() is not None


async def _locate(session: AsyncSession, *conditions: Any) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant_id, communication_id) of the message matching `conditions`, looked up across tenants."""
    session.info.pop("tenant_id", None)
    mark_system(session)
    row = (
        await session.execute(select(Communication.tenant_id, Communication.id).where(*conditions).limit(1))
    ).first()
    session.info.pop("system", None)
    return (row[0], row[1]) if row else None


async def apply_twilio_status(
    session: AsyncSession,
    *,
    message_sid: str,
    status: str,
    error_code: str | None,
    communication_id: str | None = None,
    attempt: str | None = None,
) -> bool:
    """Apply a Twilio status callback; True when the message's status moved. `communication_id` and
    `attempt` come from the callback URL's query: they settle a send attempt whose answer was never
    recorded (its worker died), whatever the status says, since Twilio calls back only on messages it took."""
    new = TWILIO_STATUS.get(status.lower())
    found = await _locate(session, Communication.provider_message_id == message_sid)
    settled = False
    if found is None:
        found = await settle_attempt(session, communication_id, attempt, "twilio", message_sid)
        settled = found is not None
    if new is None or found is None:
        return settled
    tenant_id, found_id = found
    bind_tenant(session, tenant_id)
    reason = f"Twilio reported the message {status.lower()} (error {error_code})." if error_code else None
    moved = await advance_status(
        session,
        found_id,
        new,
        at=datetime.now(UTC),
        error_code=error_code or status.lower() if new == S.FAILED else None,
        error_message=reason or f"Twilio reported the message {status.lower()}.",
    )
    return moved or settled


async def settle_attempt(
    session: AsyncSession,
    communication_id: str | uuid.UUID | None,
    attempt: str | None,
    provider: str,
    provider_message_id: str | None,
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Record as sent (with the provider's id) the message whose send attempt `attempt` is still open: the
    provider's callback is the word the send step's retry waits for. (tenant_id, communication_id), or None
    when no such attempt is open (the send step recorded the answer itself, or the ids are not ours)."""
    try:
        message_id = uuid.UUID(str(communication_id))
    except ValueError:
        return None
    if not attempt:
        return None
    found = await _locate(session, Communication.id == message_id, Communication.send_attempt == attempt)
    if found is None:
        return None
    bind_tenant(session, found[0])
    accepted = await record_accepted(
        session,
        message_id,
        attempt=attempt,
        provider=provider,
        provider_message_id=provider_message_id,
        at=datetime.now(UTC),
    )
    if accepted:
        log.info("message %s: %s's callback settled its open send attempt", message_id, provider)
    return found if accepted else None


EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)


def _event_time(value: Any) -> datetime | None:
    """An event's Unix `timestamp`, or None (then: now) when it is missing or no sane time: one bad event
    never fails the rest of its batch."""
    try:
        at = datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return at if EARLIEST_EVENT <= at <= datetime.now(UTC) + timedelta(days=1) else None


async def apply_sendgrid_events(session: AsyncSession, events: list[dict[str, Any]]) -> int:
    """Apply SendGrid events (each once, by `sg_event_id`); how many moved a status or consent."""
    changed = 0
    for item in events:
        event_id, kind = str(item.get("sg_event_id") or ""), str(item.get("event") or "")
        if not event_id or not await first_time(session, "sendgrid", event_id):
            continue
        found = await _sendgrid_message(session, item)
        if found is None:
            continue
        tenant_id, communication_id = found
        bind_tenant(session, tenant_id)
        if await settle_attempt(
            session, communication_id, _text(item.get("send_attempt")), "sendgrid", _sg_message_id(item)
        ):
            changed += 1
        at = _event_time(item.get("timestamp"))
        if kind in ("unsubscribe", "spamreport", "group_unsubscribe"):
            patient_id = await session.scalar(
                select(Communication.patient_id).where(Communication.id == communication_id)
            )
            if patient_id is not None:
                await policy.set_consent(
                    session, patient_id, Channel.EMAIL, opt_out=True, at=at or datetime.now(UTC)
                )
                changed += 1
            continue
        new = SENDGRID_STATUS.get(kind)
        if new is not None and await advance_status(
            session,
            communication_id,
            new,
            at=at or datetime.now(UTC),
            error_code=kind if new == S.FAILED else None,
            error_message=f"SendGrid reported the email {kind}." if new == S.FAILED else None,
        ):
            changed += 1
    return changed


async def _sendgrid_message(
    session: AsyncSession, item: dict[str, Any]
) -> tuple[uuid.UUID, uuid.UUID] | None:
    try:
        communication_id = uuid.UUID(str(item.get("communication_id")))
    except ValueError:
        communication_id = None
    if communication_id is not None:
        found = await _locate(
            session, Communication.id == communication_id, Communication.channel == Channel.EMAIL.value
        )
        if found is not None:
            return found
    sg_message_id = _sg_message_id(item)
    if sg_message_id:
        return await _locate(session, Communication.provider_message_id == sg_message_id)
    return None


def _sg_message_id(item: dict[str, Any]) -> str | None:
    """The message id SendGrid answered the send with (`X-Message-Id`): the event's `sg_message_id` up to
    its first dot."""
    return str(item.get("sg_message_id") or "").split(".")[0] or None


def _text(value: Any) -> str | None:
    return str(value) if value else None


def phone_of(address: str) -> str | None:
    """The E.164 number of a Twilio address (`whatsapp:+1...` or `+1...`), or None."""
    try:
        return to_e164(address.removeprefix("whatsapp:"))
    except ValueError:
        return None


async def _find_patient(
    session: AsyncSession, phone: str, channel: Channel
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant_id, patient_id) for an inbound number: our last message to it, else its only patient."""
    session.info.pop("tenant_id", None)
    mark_system(session)
    try:
        row = (
            await session.execute(
                select(Communication.tenant_id, Communication.patient_id)
                .where(
                    Communication.recipient == phone,
                    Communication.direction == Direction.OUTBOUND.value,
                    Communication.channel.in_([Channel.SMS.value, Channel.WHATSAPP.value]),
                    Communication.patient_id.is_not(None),
                )
                .order_by((Communication.channel == channel.value).desc(), Communication.created_at.desc())
                .limit(1)
            )
        ).first()
        if row is not None and row[1] is not None:
            return row[0], row[1]
        patients = (
            await session.execute(
                select(Patient.tenant_id, Patient.id).where(Patient.phone_primary == phone).limit(2)
            )
        ).all()
        return (patients[0][0], patients[0][1]) if len(patients) == 1 else None
    finally:
        session.info.pop("system", None)


async def receive_twilio_message(
    session: AsyncSession,
    routing: ReplyRouting,
    *,
    message_sid: str,
    sender: str,
    receiver: str,
    body: str,
) -> Communication | None:
    """Store an inbound SMS/WhatsApp message on the patient's conversation, apply STOP/START, and route the
    reply to waiting workflows after the commit; None when the number matches no patient or it is a repeat.

    An opt-out keyword, or an opt-in one that opts the patient back in, is consent only; an opt-in word
    that changes nothing (YES to an offer from a patient who never opted out) is routed like any reply."""
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    phone = phone_of(sender)
    if phone is None or await _locate(session, Communication.provider_message_id == message_sid):
        return None
    found = await _find_patient(session, phone, channel)
    if found is None:
        log.info("inbound %s message from a number that matches no patient; not stored", channel.value)
        return None
    tenant_id, patient_id = found
    bind_tenant(session, tenant_id)
    now = datetime.now(UTC)
    record = Communication(
        patient_id=patient_id,
        direction=Direction.INBOUND.value,
        channel=channel.value,
        sender=phone,
        recipient=phone_of(receiver) or receiver.removeprefix("whatsapp:"),
        message=body,
        status=S.RECEIVED.value,
        provider="twilio",
        provider_message_id=message_sid,
        idempotency_key=f"inbound:twilio:{message_sid}",
    )
    session.add(record)
    await session.flush()
    await routing.score(session, record)
    keyword = policy.consent_keyword(body)
    await emit(  # the text stays in `communications`; a keyword trigger reads it there
        session,
        tenant_id=tenant_id,
        type=EventType.MESSAGE_RECEIVED,
        patient_id=patient_id,
        subject=("communication", record.id),
        facts={"channel": channel.value, "consent_keyword": keyword.value if keyword else None},
        source=EventSource.WEBHOOK,
        dedupe_key=f"twilio:{message_sid}",
    )
    if keyword is not None:
        opt_out = keyword == policy.ConsentKeyword.OPT_OUT
        changed = await policy.set_consent(session, patient_id, channel, opt_out=opt_out, at=now)
        if changed:
            template_id = policy.OPT_OUT_CONFIRMATION if opt_out else policy.OPT_IN_CONFIRMATION

            async def confirmation(patient: Patient) -> service.Content:
                return await service.render_for(session, patient, template_id=template_id)

            await service.send_message(
                session,
                patient_id=patient_id,
                channel=channel,
                message=confirmation,
                idempotency_key=f"consent:{message_sid}",
                template_name=template_id,
                consent_confirmation=True,
            )
        # An opt-in word from a patient who never left (YES, SÍ) is an answer: it goes on to what waits.
        if opt_out or changed:
            return record
    communication_id = record.id
    await routing.notify_journeys(session, patient_id, communication_id)
    await routing.route_booking(session, patient_id, communication_id)
    return record
