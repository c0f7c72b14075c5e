"""The send step: a message already recorded (and committed) is handed to its provider, at most once.

This module delivers and never creates: messages are created by `service.send_message` (which records
their workflows' starts through `dispatch`), and the provider comes from `providers.provider_for`.

`deliver` commits in three steps, so a worker killed at any point never leads to a second send:
1. lock the row; return at once when the message was already sent or has failed; otherwise record a send
   attempt (`send_attempt`, a fresh key, and `send_attempt_at`) and commit;
2. call the provider, outside any transaction, with the communication id and the attempt's key (they come
   back on Twilio's status callback URL and in SendGrid's `custom_args`);
3. record the answer with the forward-only status rule, closing the attempt, and commit.
A retry that finds an attempt still open (its worker died between 1 and 3, or the provider call timed out)
does not send: it raises `AttemptInDoubt` (retryable) until the provider's status callback settles the
attempt (`webhooks` records the message sent, with the provider's id), or until `send_resolve_seconds` pass
without a word, when the provider is taken never to have received it and the message goes again. The
outbox receives nothing, so its open attempts are resent at once. A transient provider error in which the
provider surely never took the message (an error answer, no connection) closes the attempt and propagates,
so the caller's retry policy tries again; a permanent one (invalid number, unsubscribed, ...) fails the
message at once. The delivery workflow's send activity calls `deliver`, after the send policy let the
message go; a journey's or a campaign's send step takes the same steps through `send_at_once` (or
`begin_at_once` and `finish_at_once`, the gate and the attempt in the transaction that recorded the message).

WhatsApp accepts free text only within 24 hours of the patient's last inbound WhatsApp message. Outside that
window a message goes as its approved Twilio Content template (recorded in `meta_data["whatsapp_content"]`
when it was created from a template that has one); without one it fails at once with
`whatsapp_window_closed`, before any provider call, so the delivery workflow falls back to SMS.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import run_after_commit_jobs
from core.settings import Settings
from domain.communications import dispatch, pacing, policy, templates
from domain.communications.models import Communication
from domain.communications.provider_contract import (
    MessageProvider,
    OutgoingMessage,
    ProviderError,
    ProviderResult,
)
from domain.communications.providers import OutboxProvider, provider_for
from domain.communications.repository import (
    NO_ATTEMPT,
    CommunicationRepository,
    advance_status,
    record_accepted,
)
from domain.communications.service import WHATSAPP_CONTENT
from domain.enums import UNSENT_COMMUNICATION_STATUSES, Channel, CommunicationStatus, Direction

log = logging.getLogger(__name__)
# Opens a new session scoped to the message's tenant (`async with`): the send step commits in steps.
SessionFactory = Callable[[], AsyncSession]
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


class AttemptInDoubt(ProviderError):
    """An earlier send attempt of the message may have reached its provider, and nothing says yet what
    became of it: sending again now could send it twice. Retryable: by the next try the provider's status
    callback may have settled it, or the resolution window (`send_resolve_seconds`) passed."""

    def __init__(self, communication_id: uuid.UUID) -> None:
        super().__init__(
            f"Message {communication_id}: an earlier send attempt is not settled yet",
            retryable=True,
            code="attempt_in_doubt",
        )


@dataclass(frozen=True)
class _Attempt:
    """A send attempt committed and about to go to its provider (the message is held in memory only)."""

    key: str
    channel: Channel
    provider: MessageProvider
    message: OutgoingMessage
    sender: pacing.Sender
    wait: float = 0.0  # seconds until the message's turn (a campaign's, within `pacing.TURN_SLACK`)


async def deliver(
    sessions: SessionFactory, communication_id: uuid.UUID, *, at: datetime, settings: Settings
) -> DeliveryOutcome:
    """Send one recorded message at most once, in three steps: commit the attempt, call the provider
    (outside any transaction), commit its answer. Retryable ProviderErrors propagate, AttemptInDoubt too,
    and `pacing.SenderBusy` when a campaign message's turn is further away than `pacing.TURN_SLACK`."""
    async with sessions() as session:
        step = await _begin_attempt(session, communication_id, at=at, settings=settings)
        await session.commit()  # with a campaign message's turn, even when it is not yet come
    return await _hand_over(sessions, communication_id, step, at=at, held=False)


async def _hand_over(
    sessions: SessionFactory,
    communication_id: uuid.UUID,
    step: DeliveryOutcome | _Attempt | pacing.SenderBusy,
    *,
    at: datetime,
    held: bool,
) -> DeliveryOutcome:
    """The send step after its attempt was committed: call the provider at the message's turn and commit
    its answer, settling the message's held delivery start in the same transaction when `held`."""
    if isinstance(step, DeliveryOutcome):
        return step
    if isinstance(step, pacing.SenderBusy):
        raise step
    if step.wait > 0:
        await asyncio.sleep(step.wait)
    try:
        result = await step.provider.send(step.message)
    except ProviderError as exc:
        if exc.retryable and exc.in_doubt:
            raise  # the attempt stays open: its status callback, or the resolution window, settles it
        async with sessions() as session:
            outcome = await _record_refusal(session, communication_id, step, exc, at=at)
            if outcome is not None and held:
                await dispatch.settle(session, communication_id)
            await session.commit()
        if outcome is None:
            raise
        return outcome
    async with sessions() as session:
        outcome = await _record_answer(session, communication_id, step, result, at=at)
        if held:
            await dispatch.settle(session, communication_id)
        await session.commit()
    return outcome


async def _begin_attempt(
    session: AsyncSession, communication_id: uuid.UUID, *, at: datetime, settings: Settings
) -> DeliveryOutcome | _Attempt | pacing.SenderBusy:
    """Lock the message, take its sender's turn and record a new send attempt on it (the caller commits), or
    say why nothing is to be sent (yet); AttemptInDoubt while an earlier attempt may still have reached the
    provider."""
    record = await CommunicationRepository(session).for_update(communication_id)
    if record is None:
        return DeliveryOutcome("missing", sent_now=False)
    return await _open_attempt(session, record, at=at, settings=settings)


async def _open_attempt(
    session: AsyncSession,
    record: Communication,
    *,
    at: datetime,
    settings: Settings,
) -> DeliveryOutcome | _Attempt | pacing.SenderBusy:
    """`_begin_attempt` on a message its caller locked (the consent is read once per transaction: after the
    send gate, this check reads no more)."""
    if record.provider_message_id or record.status not in {s.value for s in UNSENT_COMMUNICATION_STATUSES}:
        return DeliveryOutcome(record.status, sent_now=False)
    channel = Channel(record.channel)
    provider = provider_for(channel, settings)
    if record.send_attempt is not None and not await _abandoned(session, record, provider, settings):
        raise AttemptInDoubt(record.id)
    confirmation = bool((record.meta_data or {}).get("consent_confirmation"))
    if record.patient_id and not confirmation and await policy.opted_out(session, record.patient_id, channel):
        await advance_status(
            session,
            record.id,
            CommunicationStatus.FAILED,
            at=at,
            error_code="opted_out",
            error_message=f"The patient opted out of {channel.value} messages.",
            extra=NO_ATTEMPT,
        )
        return DeliveryOutcome(CommunicationStatus.FAILED.value, False, channel.value, failure="opted_out")
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
                    extra=NO_ATTEMPT,
                )
                return DeliveryOutcome(
                    CommunicationStatus.FAILED.value, False, channel.value, failure="window_closed"
                )
    sender = pacing.sender_for(channel, provider, settings)
    wait = 0.0
    if sender.per_second and pacing.is_bulk(record):
        wait = await pacing.turn_of(session, record, sender)
        if wait > pacing.TURN_SLACK:
            return pacing.SenderBusy(wait)
    elif sender.per_second:
        await pacing.take_turn(session, sender)  # an interactive message goes now, and campaigns after it
    key = uuid.uuid4().hex
    record.send_attempt, record.send_attempt_at = key, func.now()
    outgoing = OutgoingMessage(
        channel=channel,
        recipient=record.recipient or "",
        body=record.message,
        # An email needs a subject: literal text sent without one gets it in the message's language.
        subject=record.subject
        or (templates.phrase("email_subject", record.language) if channel == Channel.EMAIL else None),
        idempotency_key=record.idempotency_key or str(record.id),
        communication_id=str(record.id),
        send_attempt=key,
        content_sid=content["sid"] if content else None,
        content_variables=content["variables"] if content else None,
    )
    return _Attempt(key, channel, provider, outgoing, sender, max(wait, 0.0))


async def _abandoned(
    session: AsyncSession, record: Communication, provider: MessageProvider, settings: Settings
) -> bool:
    """Whether the message's open attempt can be taken as never received: the outbox receives nothing, and
    a provider that has not called back within `send_resolve_seconds` of the attempt never got it (the
    database's clock, so workers' clocks do not matter)."""
    if provider.name == OutboxProvider.name:
        return True
    age: timedelta | None = await session.scalar(
        select(func.now() - Communication.send_attempt_at).where(Communication.id == record.id)
    )
    if age is not None and age < timedelta(seconds=settings.send_resolve_seconds):
        return False
    log.warning(
        "message %s: no word from %s on its last send attempt; sending it again", record.id, provider.name
    )
    return True


async def _record_refusal(
    session: AsyncSession, communication_id: uuid.UUID, attempt: _Attempt, exc: ProviderError, *, at: datetime
) -> DeliveryOutcome | None:
    """Record that the provider refused `attempt`: a permanent refusal fails the message (its outcome); a
    transient one closes the attempt, the provider never having taken the message (None: the caller
    raises, and the retry sends anew). A 429 also holds the sender back, and the message's retry takes a
    new turn."""
    is_open = Communication.send_attempt == attempt.key
    if exc.retryable:
        values: dict[str, Any] = dict(NO_ATTEMPT)
        if pacing.throttled(exc):
            values["meta_data"] = Communication.meta_data.op("-")(pacing.TURN_AT)
        await session.execute(
            update(Communication)
            .where(Communication.id == communication_id, is_open)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if pacing.throttled(exc) and attempt.sender.per_second:  # after the message: `_begin_attempt`'s order
            await pacing.back_off(session, attempt.sender)
        return None
    await advance_status(
        session,
        communication_id,
        CommunicationStatus.FAILED,
        at=at,
        error_code=exc.code or "provider_error",
        error_message=str(exc),
        extra={"provider": attempt.provider.name, **NO_ATTEMPT},
        only_if=is_open,
    )
    failed = CommunicationStatus.FAILED.value
    return DeliveryOutcome(failed, True, attempt.channel.value, attempt.provider.name, "rejected")


async def _record_answer(
    session: AsyncSession,
    communication_id: uuid.UUID,
    attempt: _Attempt,
    result: ProviderResult,
    *,
    at: datetime,
) -> DeliveryOutcome:
    """Record the provider's answer to `attempt` (accepted, or failed in its answer) and close the attempt
    (a status callback may have recorded the acceptance first: then this changes nothing)."""
    channel = attempt.channel.value
    if result.status == CommunicationStatus.FAILED:
        await advance_status(
            session,
            communication_id,
            CommunicationStatus.FAILED,
            at=at,
            error_code=result.error_code,
            error_message=result.error_message,
            extra={
                "provider": result.provider,
                "provider_message_id": result.provider_message_id,
                **NO_ATTEMPT,
            },
            only_if=Communication.send_attempt == attempt.key,
        )
        return DeliveryOutcome(result.status.value, True, channel, result.provider, "rejected")
    await record_accepted(
        session,
        communication_id,
        attempt=attempt.key,
        provider=result.provider,
        provider_message_id=result.provider_message_id,
        at=at,
    )
    return DeliveryOutcome(result.status.value, True, channel, result.provider)


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
    if record.send_attempt is not None:  # let through before, and perhaps sent: `deliver` settles it
        return GateAnswer("send", "a send attempt is open")
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


Step = DeliveryOutcome | _Attempt | pacing.SenderBusy | None  # `begin_at_once`'s answer


async def send_at_once(
    sessions: SessionFactory,
    communication_id: uuid.UUID,
    *,
    now: datetime,
    settings: Settings,
    held: bool = False,
) -> DeliveryOutcome | None:
    """Deliver a message that needs none of its delivery workflow's durable waits: not scheduled for later,
    let through by the send gate now, with no fallback to watch. None when it needs its workflow after all
    (the gate's decision is committed here, so the workflow sleeps out a wait it decided). Same rules as
    the workflow's steps (`pass_gate`, then the send step), so consent, quiet hours, the frequency cap and
    at-most-once sending all hold.

    Two transactions around the provider call: the gate's decision and the send attempt commit together
    (`begin_at_once`), then the provider's answer (`finish_at_once`). With `held` (the caller recorded the
    message with its delivery start held, `dispatch.hold_starts`), each outcome settles that start in the
    transaction that records it, and a message that needs its workflow releases it in the gate's (delivered
    right after the commit). Retryable ProviderErrors and `pacing.SenderBusy` propagate with the start still
    held: the caller retries or releases it, and a caller that dies leaves it to the relay."""
    async with sessions() as session:
        record = await CommunicationRepository(session).for_update(communication_id)
        step = await begin_at_once(session, record, now=now, settings=settings, held=held)
        await session.commit()
        await run_after_commit_jobs(session)  # a released start goes to Temporal now
    return await finish_at_once(sessions, communication_id, step, now=now, held=held)


async def begin_at_once(
    session: AsyncSession,
    record: Communication | None,
    *,
    now: datetime,
    settings: Settings,
    held: bool = False,
) -> Step:
    """`send_at_once`'s first transaction, in the caller's: on a message locked by it (or recorded in it),
    apply the gate and open the send attempt; what became of the message, the attempt to hand over, or None
    when it needs its delivery workflow. With `held`, the message's held start is settled or released here.
    The caller commits, runs what follows the commit, then calls `finish_at_once`."""
    step = await _gate_and_open(session, record, now=now, settings=settings)
    if held and record is not None and not isinstance(step, (_Attempt, pacing.SenderBusy)):
        await session.flush()  # the start this transaction may have recorded, for the UPDATE that follows
        if step is None:
            await dispatch.release(session, record.id)
        else:
            await dispatch.settle(session, record.id)
    return step


async def finish_at_once(
    sessions: SessionFactory, communication_id: uuid.UUID, step: Step, *, now: datetime, held: bool = False
) -> DeliveryOutcome | None:
    """`send_at_once`'s second half, once `begin_at_once`'s transaction committed: hand the attempt to its
    provider and commit the answer (settling a `held` start with it). None when the message needs its
    delivery workflow; `pacing.SenderBusy` and retryable ProviderErrors propagate."""
    if step is None:
        return None
    return await _hand_over(sessions, communication_id, step, at=now, held=held)


async def _gate_and_open(
    session: AsyncSession, record: Communication | None, *, now: datetime, settings: Settings
) -> DeliveryOutcome | _Attempt | pacing.SenderBusy | None:
    """`send_at_once`'s first transaction on the locked message: what became of it, its attempt opened, or
    None when it needs its delivery workflow."""
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
    return await _open_attempt(session, record, at=now, settings=settings)


async def mark_failed(
    session: AsyncSession, communication_id: uuid.UUID, *, at: datetime, code: str, reason: str
) -> bool:
    """Fail a message that could not be sent (e.g. retries exhausted, patient opted out)."""
    return await advance_status(
        session, communication_id, CommunicationStatus.FAILED, at=at, error_code=code, error_message=reason
    )
