"""The campaign workflow's steps, each one transaction in the campaign's tenant (run by its activities).

`enroll_batch` is where members are reached. It locks the campaign's row first, so a pause or a cancel
waits for the batch in progress and no member is enrolled after it answered; it freezes the members on
the first batch (one `INSERT ... SELECT` of the cohort's query: later changes to the cohort never change a
running campaign); then it takes the next pending members in patient order and places them through the
path of `POST /journeys/instances` (`journeys.place_many`: the journey read once, one INSERT for the batch,
each under its member's idempotency key and the journey's one-active rule), or records why it skipped
them. The members' states and the journey instances commit together: a crash anywhere loses the whole
batch or nothing, and the retry finds it as it was.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Unprocessable
from core.periodic import claim
from core.settings import Settings
from domain.campaigns.models import Campaign, CampaignMember
from domain.campaigns.plan import (
    BATCH_SIZE,
    FINAL_STATUSES,
    BatchResult,
    CampaignPlan,
    CampaignStatus,
    MemberState,
    SkipReason,
    enrollment_key,
)
from domain.campaigns.repository import CampaignRepository
from domain.cohorts.models import Cohort
from domain.cohorts.service import members_of
from domain.communications import pacing
from domain.communications.messages import create_communication
from domain.communications.providers import provider_for
from domain.communications.repository import CommunicationRepository
from domain.communications.schemas import CommunicationCreate
from domain.communications.service import recipient_for
from domain.enums import Channel, JourneyInstanceStatus, PatientStatus
from domain.journeys import service as journeys
from domain.journeys.models import JourneyInstance
from domain.patients.models import ChannelConsent, Patient
from domain.scheduling.repository import tenant_timezone

SENDING_SECONDS = 60  # a message batch's share of its sender's time
MAX_IN_FLIGHT = 8  # a batch's messages waiting for their turns at once (each holds a database connection)


async def plan_of(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignPlan:
    """What the workflow needs of the campaign as stored now."""
    campaign = await CampaignRepository(session).get_or_404(campaign_id)
    return CampaignPlan(
        status=campaign.status,
        starts_at=campaign.starts_at.isoformat() if campaign.starts_at else None,
        pace_per_minute=campaign.pace_per_minute,
    )


async def enroll_batch(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    now: datetime,
    limit: int,
    settings: Settings,
    message_chunk: int | None = None,
) -> tuple[BatchResult, Sending]:
    """Reach up to `limit` pending members (freezing the members first, once), unless the campaign is not
    running or its send window is closed (then how long until it opens): each placed on the journey, or
    sent the message; with the messages recorded, for the caller to hand to their providers after the
    commit (their delivery starts held: `dispatch.hold_starts`). A message campaign's batch holds at most
    `SENDING_SECONDS` of its sender's throughput, and its messages wait for their sender's turns (bulk);
    at most `message_chunk` of them in this transaction (so the caller hands them over while it records the
    next). A journey campaign's members are placed all at once (`journeys.place_many`)."""
    campaign = await CampaignRepository(session).get_or_404(campaign_id)
    await session.refresh(campaign, with_for_update=True)
    if campaign.status == CampaignStatus.SCHEDULED:  # its start has come: who is in it is decided now
        await _freeze(session, campaign, now)
    if campaign.status != CampaignStatus.RUNNING:
        return BatchResult(campaign.status, 0, await _pending(session, campaign)), Sending([])
    wait = await _until_window(session, campaign, now)
    if wait > 0:
        pending = await _pending(session, campaign)
        return BatchResult(campaign.status, 0, pending, wait_seconds=wait), Sending([])
    sender = None
    if campaign.channel is not None:
        channel = Channel(campaign.channel)
        sender = pacing.sender_for(channel, provider_for(channel, settings), settings)
        limit = min(limit, batch_for_sender(sender), message_chunk or limit)
    members: list[CampaignMember] = await claim(
        session,
        select(CampaignMember)
        .where(CampaignMember.campaign_id == campaign.id, CampaignMember.state == MemberState.PENDING)
        .order_by(CampaignMember.patient_id),
        limit=limit,
    )
    reasons = await _skip_reasons(session, campaign, [m.patient_id for m in members], now=now)
    placed: dict[uuid.UUID, JourneyInstance | None] = {}
    if campaign.journey_id is not None:  # the whole batch in one statement, the journey read once
        placed = await journeys.place_many(
            session,
            campaign.journey_id,
            [
                journeys.Placement(m.patient_id, enrollment_key(campaign.id, m.patient_id))
                for m in members
                if m.patient_id not in reasons
            ],
        )
    messages: list[uuid.UUID] = []
    for member in members:
        member.processed_at = now
        reason = reasons.get(member.patient_id)
        if reason is None and campaign.journey_id is not None and placed[member.patient_id] is None:
            reason = SkipReason.ALREADY_ON_JOURNEY  # placed meanwhile: the journey's one-active rule refused
        if reason is not None:
            member.state, member.skip_reason = MemberState.SKIPPED.value, reason.value
        elif campaign.journey_id is not None:
            instance = placed[member.patient_id]
            assert instance is not None
            member.state, member.journey_instance_id = MemberState.ENROLLED.value, instance.id
        else:
            record, _ = await create_communication(
                CommunicationRepository(session), _message_for(campaign, member.patient_id)
            )
            pacing.mark_bulk(record)
            member.state, member.communication_id = MemberState.SENT.value, record.id
            messages.append(record.id)
    if members:
        campaign.last_batch_at = now  # and the real-time stream hears of it (`trg_campaigns_prm_metrics`)
    await session.flush()
    if sender is None:
        sending = Sending(messages)
    else:
        sending = Sending(messages, in_flight_for(sender), batch_for_sender(sender))
    return BatchResult(campaign.status, len(members), await _pending(session, campaign)), sending


@dataclass(frozen=True)
class Sending:
    """The messages a batch recorded, for its activity to hand to their providers after the commit, and how
    many of them to keep in flight at once."""

    ids: list[uuid.UUID]
    in_flight: int = 1
    batch_limit: int = BATCH_SIZE  # members a batch reaches at most: a minute of its sender's throughput


def batch_for_sender(sender: pacing.Sender) -> int:
    """How many messages a batch may hold: `SENDING_SECONDS` of its sender's throughput (at least one), so a
    batch's sending fits well inside its activity's timeout at any pace."""
    if not sender.per_second:
        return BATCH_SIZE
    return max(1, min(BATCH_SIZE, int(sender.per_second * SENDING_SECONDS)))


def in_flight_for(sender: pacing.Sender) -> int:
    """How many of a batch's messages wait for their turns at once: enough that each has half a second for
    its own work (the send step's transactions and the provider call) without the sender missing a turn;
    `MAX_IN_FLIGHT` when the sender is unpaced (nothing to wait for: as many as the connections allow)."""
    if not sender.per_second:
        return MAX_IN_FLIGHT
    return max(1, min(MAX_IN_FLIGHT, math.ceil(sender.per_second / 2)))


def _reachable(patient: Patient, channel: Channel) -> bool:
    """Whether the patient has an address for `channel` (the send path's own rule)."""
    try:
        recipient_for(patient, channel)
    except Unprocessable:
        return False
    return True


def _message_for(campaign: Campaign, patient_id: uuid.UUID) -> CommunicationCreate:
    """The campaign's message to one member, as `POST /communications` would take it (rendered in the
    patient's language, through the one send path), under the member's idempotency key."""
    assert campaign.channel is not None  # a message campaign (ck_campaigns_journey_or_message)
    return CommunicationCreate(
        patient_id=patient_id,
        channel=Channel(campaign.channel),
        template_name=campaign.template_name,
        message=campaign.message_text,
        idempotency_key=enrollment_key(campaign.id, patient_id),
    )


async def finish(session: AsyncSession, campaign_id: uuid.UUID, *, now: datetime, failure: str | None) -> str:
    """End the campaign: completed (or failed with `failure`) unless it already ended; its final status."""
    campaign = await CampaignRepository(session).get_or_404(campaign_id)
    await session.refresh(campaign, with_for_update=True)
    if campaign.status in FINAL_STATUSES:
        return campaign.status
    if failure is not None:
        campaign.status, campaign.failure_reason = CampaignStatus.FAILED.value, failure[:200]
    else:
        campaign.status = CampaignStatus.COMPLETED.value
    campaign.completed_at = now
    return campaign.status


async def _freeze(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """Insert one member row per patient the cohort holds now, and mark the campaign running."""
    cohort = await session.scalar(select(Cohort).where(Cohort.id == campaign.cohort_id))
    assert cohort is not None  # campaigns.cohort_id is RESTRICT: a cohort in use is not deleted
    patients = members_of(cohort, now=now).subquery()
    result = await session.execute(
        insert(CampaignMember)
        .from_select(
            ["id", "tenant_id", "campaign_id", "patient_id", "state"],
            select(
                func.gen_random_uuid(),
                literal(campaign.tenant_id),
                literal(campaign.id),
                patients.c.id,
                literal(MemberState.PENDING.value),
            ),
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "patient_id"])
    )
    campaign.member_count = int(result.rowcount)  # type: ignore[attr-defined]
    campaign.frozen_at = now
    campaign.status = CampaignStatus.RUNNING.value


PENDING_COUNTED = 1000  # a batch says how many members are pending up to this many (more: "at least")


async def _pending(session: AsyncSession, campaign: Campaign) -> int:
    """The campaign's pending members, counted up to `PENDING_COUNTED`: the workflow only asks whether any
    are left, and a full count of a 100,000-member campaign after every chunk of 20 would cost more than
    the chunk (the campaign's counts come from `GET /campaigns/{id}`, not from here)."""
    pending = (
        select(CampaignMember.patient_id)
        .where(CampaignMember.campaign_id == campaign.id, CampaignMember.state == MemberState.PENDING)
        .limit(PENDING_COUNTED)
        .subquery()
    )
    return int(await session.scalar(select(func.count()).select_from(pending)) or 0)


async def _skip_reasons(
    session: AsyncSession, campaign: Campaign, patient_ids: list[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, SkipReason]:
    """Why each of `patient_ids` is not to be reached now (absent: reach them): merged into another record,
    no longer active; an occurrence of a recurring campaign, reached by another occurrence of it within its
    cool-down; for a journey, already on it (a running instance that is not this campaign's); for a
    message, opted out of its channel or without an address for it."""
    if not patient_ids:
        return {}
    reasons: dict[uuid.UUID, SkipReason] = {}
    channel = Channel(campaign.channel) if campaign.channel else None
    for patient in await session.scalars(select(Patient).where(Patient.id.in_(patient_ids))):
        if patient.merged_into_id is not None:
            reasons[patient.id] = SkipReason.MERGED
        elif patient.status != PatientStatus.ACTIVE:
            reasons[patient.id] = SkipReason.INACTIVE
        elif channel is not None and not _reachable(patient, channel):
            reasons[patient.id] = SkipReason.NO_CONTACT
    for patient_id in await _reached_within_cooldown(session, campaign, patient_ids, now=now):
        reasons.setdefault(patient_id, SkipReason.COOLDOWN)
    if channel is not None:
        opted_out = select(ChannelConsent.patient_id).where(
            ChannelConsent.patient_id.in_(patient_ids),
            ChannelConsent.channel == channel.value,
            ChannelConsent.opted_out.is_(True),
        )
        for patient_id in await session.scalars(opted_out):
            reasons.setdefault(patient_id, SkipReason.OPTED_OUT)
        return reasons
    ours = [enrollment_key(campaign.id, p) for p in patient_ids]
    for patient_id in await session.scalars(
        select(JourneyInstance.patient_id).where(
            JourneyInstance.journey_id == campaign.journey_id,
            JourneyInstance.patient_id.in_(patient_ids),
            JourneyInstance.status == JourneyInstanceStatus.ACTIVE,
            func.coalesce(JourneyInstance.idempotency_key, "").not_in(ours),
        )
    ):
        reasons.setdefault(patient_id, SkipReason.ALREADY_ON_JOURNEY)
    return reasons


async def _reached_within_cooldown(
    session: AsyncSession, campaign: Campaign, patient_ids: list[uuid.UUID], *, now: datetime
) -> list[uuid.UUID]:
    """Those of `patient_ids` that another occurrence of the same recurring campaign reached (enrolled or
    sent) within its definition's cool-down before `now` (none for a one-off campaign)."""
    if campaign.definition_id is None:
        return []
    cooldown = await session.scalar(
        select(Campaign.cooldown_days).where(Campaign.id == campaign.definition_id)
    )
    if not cooldown:
        return []
    reached = (
        select(CampaignMember.patient_id)
        .join(Campaign, Campaign.id == CampaignMember.campaign_id)
        .where(
            Campaign.definition_id == campaign.definition_id,
            Campaign.id != campaign.id,
            CampaignMember.patient_id.in_(patient_ids),
            CampaignMember.state.in_([MemberState.ENROLLED.value, MemberState.SENT.value]),
            CampaignMember.processed_at >= now - timedelta(days=cooldown),
        )
        .distinct()
    )
    return list(await session.scalars(reached))


async def _until_window(session: AsyncSession, campaign: Campaign, now: datetime) -> float:
    """Seconds until the campaign's daily window opens in the tenant's time zone (0: open now, or none)."""
    start, end = campaign.send_window_start, campaign.send_window_end
    if start is None or end is None:
        return 0.0
    local = now.astimezone(ZoneInfo(await tenant_timezone(session, campaign.tenant_id)))
    if start <= local.time() < end:
        return 0.0
    opens = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if local.time() >= end:
        opens += timedelta(days=1)
    # Wall-clock arithmetic, then back to an instant: right across a DST change too.
    opens = opens.replace(tzinfo=None).replace(tzinfo=local.tzinfo)
    return max((opens.astimezone(UTC) - now).total_seconds(), 1.0)
