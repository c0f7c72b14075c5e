"""Campaign use cases the API calls: launch, read with counts, pause, resume, cancel.

A campaign gets exactly one workflow, `campaign-<id>`: its start is recorded in the campaign's own
transaction (`core.workflow_commands`), so a launch answers 201 whether or not Temporal is up. Pause, resume
and cancel change the stored status (the truth the workflow's batches read, under the campaign's row lock,
so no member is enrolled once a pause or cancel has answered) and signal the workflow so it reacts at once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import insert_once
from core.errors import Conflict, Unprocessable
from core.gateway import SA_JOURNEY, StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import record_signal, record_start
from domain.campaigns.models import Campaign
from domain.campaigns.plan import (
    FINAL_STATUSES,
    SIGNAL_CHANGED,
    WORKFLOW_NAME,
    CampaignChanged,
    CampaignInput,
    CampaignStatus,
    campaign_workflow_id,
)
from domain.campaigns.repository import CampaignRepository
from domain.campaigns.schemas import (
    CampaignCounts,
    CampaignCreate,
    CampaignMessage,
    CampaignResponse,
    SendWindow,
)
from domain.cohorts.models import Cohort
from domain.communications.templates import template_variants
from domain.enums import Channel
from domain.journeys.models import Journey


async def create_campaign(
    session: AsyncSession, data: CampaignCreate, *, created_by: str, idempotency_key: str | None = None
) -> tuple[Campaign, bool]:
    """Launch a campaign; (campaign, created). Its workflow's start is recorded with it.

    The cohort and the journey must be the tenant's (422 naming the field otherwise) and the journey active
    (409). Under an `idempotency_key` already used, the campaign launched with it is returned."""
    repo = CampaignRepository(session)
    if idempotency_key and (existing := await repo.by_idempotency_key(idempotency_key)) is not None:
        return existing, False
    # KEY SHARE: a delete of the cohort waits for this launch (and then refuses), or this waits for it.
    cohort = select(Cohort.id).where(Cohort.id == data.cohort_id).with_for_update(key_share=True)
    if await session.scalar(cohort) is None:
        raise Unprocessable("No such cohort in your tenant.", loc=("body", "cohort_id"))
    if data.journey_id is not None:
        journey = await session.scalar(select(Journey).where(Journey.id == data.journey_id))
        if journey is None:
            raise Unprocessable("No such journey in your tenant.", loc=("body", "journey_id"))
        if not journey.is_active:
            raise Conflict("This journey is inactive; activate it before launching a campaign into it.")
    message = data.message
    if message is not None and message.template_name is not None:
        if not await template_variants(session, message.template_name):
            raise Unprocessable(
                f"Unknown template {message.template_name!r}.", loc=("body", "message", "template_name")
            )
    window = data.send_window
    campaign = Campaign(
        id=uuid.uuid4(),
        name=data.name,
        cohort_id=data.cohort_id,
        journey_id=data.journey_id,
        channel=message.channel.value if message else None,
        template_name=message.template_name if message else None,
        message_text=message.message if message else None,
        status=CampaignStatus.SCHEDULED.value,
        starts_at=data.starts_at,
        send_window_start=window.start if window else None,
        send_window_end=window.end if window else None,
        pace_per_minute=data.pace_per_minute,
        created_by=created_by,
        idempotency_key=idempotency_key,
    )
    campaign, created = await insert_once(
        session,
        campaign,
        constraint="uq_campaigns_tenant_idempotency_key",
        existing=partial(repo.by_idempotency_key, idempotency_key or ""),  # the index holds only keys given
    )
    if created:
        record_start(session, workflow_start(campaign))
    return campaign, created


def workflow_start(campaign: Campaign) -> WorkflowStart:
    """The start of the campaign's workflow: one run per campaign, ever; searchable by tenant and journey."""
    return WorkflowStart(
        workflow=WORKFLOW_NAME,
        workflow_id=campaign_workflow_id(campaign.id),
        input=CampaignInput(tenant_id=str(campaign.tenant_id), campaign_id=str(campaign.id)),
        search_attributes={
            **ids_of(campaign.tenant_id),
            **({SA_JOURNEY: str(campaign.journey_id)} if campaign.journey_id else {}),
        },
        policy=StartPolicy.ONCE,
    )


async def views(session: AsyncSession, campaigns: list[Campaign]) -> list[CampaignResponse]:
    """The campaigns as the API shows them, with their counts (one query for all)."""
    counts = await CampaignRepository(session).counts([c.id for c in campaigns])
    return [_view(c, counts[c.id]) for c in campaigns]


def _view(campaign: Campaign, counts: CampaignCounts) -> CampaignResponse:
    response = CampaignResponse.model_validate(campaign)
    if campaign.channel is not None:
        response.message = CampaignMessage(
            channel=Channel(campaign.channel),
            template_name=campaign.template_name,
            message=campaign.message_text,
        )
    if campaign.send_window_start is not None and campaign.send_window_end is not None:
        response.send_window = SendWindow(start=campaign.send_window_start, end=campaign.send_window_end)
    response.counts = counts
    return response


async def pause_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    """Hold a scheduled or running campaign: no member is enrolled after this answers (409 once over)."""
    campaign = await _locked(session, campaign_id)
    if campaign.status == CampaignStatus.PAUSED:
        return campaign  # a repeated click
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        raise Conflict(f"The campaign is {campaign.status}; only a scheduled or running one can be paused.")
    return _change(session, campaign, CampaignStatus.PAUSED)


async def resume_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    """Continue a paused campaign where it stopped (409 unless paused or already going)."""
    campaign = await _locked(session, campaign_id)
    if campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        return campaign  # a repeated click
    if campaign.status != CampaignStatus.PAUSED:
        raise Conflict(f"The campaign is {campaign.status}; only a paused one can be resumed.")
    going = CampaignStatus.RUNNING if campaign.frozen_at is not None else CampaignStatus.SCHEDULED
    return _change(session, campaign, going)


async def cancel_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    """Stop a campaign for good: members not yet enrolled never are; those enrolled stay on the journey."""
    campaign = await _locked(session, campaign_id)
    if campaign.status == CampaignStatus.CANCELLED:
        return campaign
    if campaign.status in FINAL_STATUSES:
        raise Conflict(f"The campaign is already {campaign.status}.")
    campaign.cancelled_at = datetime.now(UTC)
    return _change(session, campaign, CampaignStatus.CANCELLED)


async def _locked(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    """The campaign, its row locked until the transaction ends: a batch in progress finishes first."""
    campaign = await CampaignRepository(session).get_or_404(campaign_id)
    await session.refresh(campaign, with_for_update=True)
    return campaign


def _change(session: AsyncSession, campaign: Campaign, status: CampaignStatus) -> Campaign:
    campaign.status = status.value
    record_signal(
        session,
        workflow_id=campaign_workflow_id(campaign.id),
        signal=SIGNAL_CHANGED,
        arg=CampaignChanged(status=status.value),
    )
    return campaign
