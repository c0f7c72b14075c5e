"""The send policy: the checks every automated message passes before a provider is called.

In order: consent (nothing goes to a channel the patient opted out of: refused), quiet hours (the message
waits until the window opens in the patient's time zone, else the tenant's; urgent messages bypass it and
say so), and the tenant's frequency cap (the message waits until the oldest message in the window ages out).
A message that must wait is never dropped: the delivery workflow sleeps on a durable timer and asks again.

Consent keywords follow Twilio's defaults, plus common Spanish ones (`reply_words`): a reply of exactly one
of them (any case or accents, surrounding whitespace ignored) opts the patient out of, or back into, the
channel it arrived on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock, prebuilt, transaction_held
from domain.communications import reply_words
from domain.communications.models import Communication
from domain.enums import Channel, CommunicationStatus, Direction
from domain.patients.models import ChannelConsent, Patient
from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantSettings
from domain.tenants.service import settings_of, tenant_of

OPT_OUT_KEYWORDS = reply_words.every_language(reply_words.OPT_OUT_KEYWORDS)
OPT_IN_KEYWORDS = reply_words.every_language(reply_words.OPT_IN_KEYWORDS)
# The built-in templates (in the patient's language) that confirm a change of consent.
OPT_OUT_CONFIRMATION = "consent_opt_out"
OPT_IN_CONFIRMATION = "consent_opt_in"
RELEASED_RECHECK = timedelta(minutes=1)
IN_FLIGHT = timedelta(hours=1)  # database time: how long a released message may take to be sent
COUNTED_STATUSES = (CommunicationStatus.SENT, CommunicationStatus.DELIVERED, CommunicationStatus.READ)


class ConsentKeyword(StrEnum):
    """What an inbound message says about consent."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def consent_keyword(text: str | None) -> ConsentKeyword | None:
    """OPT_OUT / OPT_IN when the whole message is a consent keyword of any language (any case or accents),
    else None."""
    word = reply_words.keyword_of(text)
    if word in OPT_OUT_KEYWORDS:
        return ConsentKeyword.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return ConsentKeyword.OPT_IN
    return None


_CONSENTS_READ = "consents_read"  # `transaction_held`: {(patient, channel): opted out}


async def opted_out(session: AsyncSession, patient_id: uuid.UUID, channel: Channel) -> bool:
    """True when the patient has opted out of `channel`. Read once per transaction: a message recorded and
    passed through the send gate in one transaction (a journey's) asks twice, and `set_consent` keeps
    the answer current."""
    known = await transaction_held(session, _CONSENTS_READ)
    key = (patient_id, channel.value)
    if key not in known:
        known[key] = bool(
            await session.scalar(
                select(ChannelConsent.opted_out).where(
                    ChannelConsent.patient_id == patient_id, ChannelConsent.channel == channel.value
                )
            )
        )
    return known[key]


async def set_consent(
    session: AsyncSession, patient_id: uuid.UUID, channel: Channel, *, opt_out: bool, at: datetime
) -> bool:
    """Record an opt-out or opt-in at once (upsert); True when it changed the patient's consent."""
    before = await opted_out(session, patient_id, channel)
    stmt = insert(ChannelConsent).values(
        id=uuid.uuid4(),
        tenant_id=session.info["tenant_id"],
        patient_id=patient_id,
        channel=channel.value,
        opted_out=opt_out,
        changed_at=at,
        source="keyword",
    )
    stmt = stmt.on_conflict_do_update(
        constraint="uq_channel_consents_patient_channel",
        set_={"opted_out": opt_out, "changed_at": at, "source": "keyword"},
    )
    await session.execute(stmt)
    (await transaction_held(session, _CONSENTS_READ))[(patient_id, channel.value)] = opt_out
    return before != opt_out


class Verdict(StrEnum):
    """What the policy decided for one message at one moment."""

    SEND = "send"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    """The policy's answer: send now, wait until `until`, or refuse with a PHI-free `reason`."""

    verdict: Verdict
    reason: str
    until: datetime | None = None


def patient_zone(patient: Patient | None, tenant: Tenant | None) -> ZoneInfo:
    """The patient's time zone, else the tenant's, else UTC."""
    for name in (patient.timezone if patient else None, tenant.timezone if tenant else None):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_hours_end(now: datetime, zone: ZoneInfo, settings: TenantSettings) -> datetime | None:
    """When the quiet window containing `now` ends (UTC), or None when `now` is outside it."""
    quiet = settings.quiet_hours
    if not quiet.enabled or quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start > quiet.end:  # spans midnight, e.g. 21:00-08:00
        inside = clock >= quiet.start or clock < quiet.end
        end_day = local.date() + timedelta(days=1) if clock >= quiet.start else local.date()
    else:
        inside = quiet.start <= clock < quiet.end
        end_day = local.date()
    if not inside:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)


async def frequency_cap_release(
    session: AsyncSession, communication: Communication, now: datetime, settings: TenantSettings
) -> datetime | None:
    """When the patient's frequency cap lets this message go (UTC), or None when it may go now.

    Counts what was sent in the window and what the policy already let go but is not sent yet, under a
    per-patient advisory lock held to the end of the caller's transaction: concurrent checks for one patient
    queue, so the cap holds however many messages are released at once. Both are counted by one statement
    (one snapshot): the send step records a message sent without that lock, so one that went from let go to
    sent between two reads would be in neither count, and one message too many would go."""
    cap = settings.frequency_cap
    await advisory_xact_lock(session, f"communications:cap:{communication.patient_id}")
    sent, oldest_sent, on_their_way = (
        await session.execute(
            _CAP_COUNTS,
            {
                "b_patient_id": communication.patient_id,
                "b_communication_id": communication.id,
                "b_since": now - timedelta(hours=cap.per_hours),
                "b_max_messages": cap.max_messages,
            },
        )
    ).one()
    if sent + on_their_way < cap.max_messages:
        return None
    if sent < cap.max_messages:  # the cap is full of messages still being sent: ask again shortly
        return now + RELEASED_RECHECK
    return oldest_sent + timedelta(hours=cap.per_hours)


def _cap_counts() -> Any:
    """`frequency_cap_release`'s one statement, built once (building it and its cache key took 0.55 ms of
    CPU per message): the send times of the patient's last `:b_max_messages` messages sent since `:b_since`
    (their count and the oldest), and how many the policy let go that are not sent yet, besides
    `:b_communication_id`."""
    C = Communication
    others = (
        C.patient_id == bindparam("b_patient_id", type_=C.patient_id.type),
        C.direction == Direction.OUTBOUND.value,
        C.id != bindparam("b_communication_id", type_=C.id.type),
    )
    recent = (
        select(C.sent_at)
        .where(
            *others,
            C.status.in_([s.value for s in COUNTED_STATUSES]),
            C.sent_at > bindparam("b_since", type_=C.sent_at.type),
        )
        .order_by(C.sent_at.desc())
        .limit(bindparam("b_max_messages"))
        .subquery()
    )
    released = (  # let go by the policy, on their way to the provider
        select(func.count())
        .where(
            *others,
            C.status == CommunicationStatus.QUEUED.value,
            C.provider_message_id.is_(None),
            C.meta_data.has_key("policy"),
            C.updated_at > func.now() - IN_FLIGHT,  # older ones are stuck, not on their way
        )
        .scalar_subquery()
    )
    return prebuilt(select(func.count(), func.min(recent.c.sent_at), released))


_CAP_COUNTS = _cap_counts()


async def evaluate(session: AsyncSession, communication: Communication, now: datetime) -> Decision:
    """Apply consent, quiet hours and the frequency cap to one outbound message at `now`."""
    channel = Channel(communication.channel)
    confirmation = bool((communication.meta_data or {}).get("consent_confirmation"))
    if (
        communication.patient_id is not None
        and not confirmation  # the one reply confirming a STOP goes to the channel just left
        and await opted_out(session, communication.patient_id, channel)
    ):
        return Decision(Verdict.REFUSE, f"The patient opted out of {channel.value} messages.")
    tenant = await tenant_of(session, communication.tenant_id)
    settings = settings_of(tenant) if tenant is not None else TenantSettings()
    # The patient the caller's transaction loaded (the message's recording) is taken from the session.
    patient = (
        await session.get(Patient, communication.patient_id) if communication.patient_id is not None else None
    )
    quiet_end = quiet_hours_end(now, patient_zone(patient, tenant), settings)
    if quiet_end is not None and not communication.is_urgent:
        return Decision(Verdict.WAIT, "quiet hours", until=quiet_end)
    if communication.patient_id is not None and not communication.is_urgent:
        released = await frequency_cap_release(session, communication, now, settings)
        if released is not None:
            return Decision(Verdict.WAIT, "frequency cap", until=released)
    if quiet_end is not None:
        return Decision(Verdict.SEND, "urgent: sent during quiet hours")
    return Decision(Verdict.SEND, "allowed")
