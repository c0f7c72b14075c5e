"""Campaign use cases the API calls: launch, read with counts, pause, resume, cancel; and the launch of a
recurring campaign's occurrence, which its schedule's activity calls.

A campaign gets exactly one workflow, `campaign-<id>`: its start is recorded in the campaign's own
transaction (`core.workflow_commands`), so a launch answers 201 whether or not Temporal is up. Pause, resume
and cancel change the stored status (the truth the workflow's batches read, under the campaign's row lock,
so no member is enrolled once a pause or cancel has answered) and signal the workflow so it reacts at once.

A recurring campaign (`domain.campaigns.recurrence`) gets a Temporal Schedule instead, recorded the same
way; pause, resume and cancel pause, unpause and delete it (a cancel also cancels the occurrence running).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, append
from core.database import insert_once
from core.errors import Conflict, Unprocessable
from core.gateway import SA_JOURNEY, StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import (
    SCHEDULE_DELETE,
    SCHEDULE_PAUSE,
    SCHEDULE_UNPAUSE,
    record_schedule,
    record_schedule_change,
    record_signal,
    record_start,
)
from domain.campaigns import recurrence
from domain.campaigns.models import Campaign
from domain.campaigns.plan import (
    FINAL_STATUSES,
    SIGNAL_CHANGED,
    WORKFLOW_NAME,
    CampaignChanged,
    CampaignInput,
    CampaignStatus,
    LaunchOutcome,
    LaunchResult,
    campaign_schedule_id,
    campaign_workflow_id,
)
from domain.campaigns.repository import CampaignRepository
from domain.campaigns.schemas import (
    CampaignCounts,
    CampaignCreate,
    CampaignMessage,
    CampaignResponse,
    CampaignRun,
    RecurrenceView,
    SendWindow,
)
from domain.cohorts.models import Cohort
from domain.communications.templates import template_variants
from domain.enums import Channel
from domain.journeys.models import Journey


async def create_campaign(
    session: AsyncSession, data: CampaignCreate, *, created_by: str, idempotency_key: str | None = None
) -> tuple[Campaign, bool]:
    """Launch a campaign; (campaign, created). Its workflow's start (a recurring campaign's: its schedule)
    is recorded with it.

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
    starts_at, fire_at_once = data.starts_at, False
    if data.recurrence is not None:  # a definition: `starts_at` is its first occurrence's time
        starts_at, fire_at_once = recurrence.first_fire(data.starts_at, datetime.now(UTC))
    campaign = Campaign(
        id=uuid.uuid4(),
        name=data.name,
        cohort_id=data.cohort_id,
        journey_id=data.journey_id,
        channel=message.channel.value if message else None,
        template_name=message.template_name if message else None,
        message_text=message.message if message else None,
        status=CampaignStatus.SCHEDULED.value,
        starts_at=starts_at,
        send_window_start=window.start if window else None,
        send_window_end=window.end if window else None,
        pace_per_minute=data.pace_per_minute,
        created_by=created_by,
        idempotency_key=idempotency_key,
        every_days=data.recurrence.every_days if data.recurrence else None,
        cooldown_days=data.recurrence.cooldown_days if data.recurrence else None,
    )
    campaign, created = await insert_once(
        session,
        campaign,
        constraint="uq_campaigns_tenant_idempotency_key",
        existing=partial(repo.by_idempotency_key, idempotency_key or ""),  # the index holds only keys given
    )
    if created and campaign.recurring:
        record_schedule(session, recurrence.schedule_of(campaign, fire_at_once=fire_at_once))
    elif created:
        record_start(session, workflow_start(campaign))
    return campaign, created


SCHEDULE_ACTOR = Actor(sub="system:campaign-schedule", roles=())  # who launches occurrences, for the audit


async def launch_occurrence(
    session: AsyncSession, definition_id: uuid.UUID, *, scheduled_for: datetime
) -> LaunchResult:
    """Launch the occurrence of a recurring campaign for one fire of its schedule: a campaign with the
    definition's cohort, journey or message, window and pace, starting at once, its workflow's start
    recorded with it, and the launch on the audit trail.

    Once per fire: the definition's row lock queues concurrent fires, and `uq_campaigns_definition_
    scheduled_for` makes the database the judge, so a retried or repeated fire finds its occurrence. No
    occurrence when the definition was paused or cancelled first, nor while the previous one has not
    ended (the overlap is skipped, not queued)."""
    definition = await _locked(session, definition_id)
    if not definition.recurring:
        raise Conflict("This campaign does not recur.")
    repo = CampaignRepository(session)
    if (found := await repo.occurrence(definition.id, scheduled_for)) is not None:
        return LaunchResult(LaunchOutcome.ALREADY_LAUNCHED.value, str(found.id))
    if definition.status != CampaignStatus.SCHEDULED:
        return LaunchResult(LaunchOutcome.SKIPPED_NOT_ACTIVE.value)
    if await repo.unfinished_occurrences(definition.id):
        return LaunchResult(LaunchOutcome.SKIPPED_OVERLAP.value)
    occurrence, created = await insert_once(
        session,
        Campaign(
            id=uuid.uuid4(),
            **{column: getattr(definition, column) for column in _COPIED},
            status=CampaignStatus.SCHEDULED.value,
            definition_id=definition.id,
            scheduled_for=scheduled_for,
        ),
        constraint="uq_campaigns_definition_scheduled_for",
        existing=partial(repo.occurrence, definition.id, scheduled_for),
    )
    if not created:
        return LaunchResult(LaunchOutcome.ALREADY_LAUNCHED.value, str(occurrence.id))
    record_start(session, workflow_start(occurrence))
    event = SCHEDULE_ACTOR.event(
        tenant_id=occurrence.tenant_id,
        action="campaigns.launch_occurrence",
        resource_type="campaigns",
        resource_id=occurrence.id,
    )
    await append(session, [event])
    return LaunchResult(LaunchOutcome.LAUNCHED.value, str(occurrence.id))


# What an occurrence takes from its definition.
_COPIED = (
    "name",
    "cohort_id",
    "journey_id",
    "channel",
    "template_name",
    "message_text",
    "send_window_start",
    "send_window_end",
    "pace_per_minute",
    "created_by",
)


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
    """The campaigns as the API shows them, with their counts (one query for all); a recurring campaign
    with its schedule, its latest runs, and its counts summed over all its runs."""
    repo = CampaignRepository(session)
    definitions = [c.id for c in campaigns if c.recurring]
    counts = await repo.counts([c.id for c in campaigns if not c.recurring])
    counts |= await repo.definition_counts(definitions) if definitions else {}
    runs = await repo.latest_runs(definitions, per_definition=recurrence.RUNS_SHOWN) if definitions else {}
    run_counts = await repo.counts([r.id for _, shown in runs.values() for r in shown]) if runs else {}
    now = datetime.now(UTC)
    responses = []
    for campaign in campaigns:
        response = _view(campaign, counts[campaign.id])
        if campaign.recurring:
            total, shown = runs[campaign.id]
            response.recurrence = RecurrenceView(
                every_days=campaign.every_days,
                cooldown_days=campaign.cooldown_days or 0,
                schedule_id=campaign_schedule_id(campaign.id),
                schedule_state=recurrence.schedule_state(campaign),
                next_run_at=recurrence.next_run_at(campaign, now),
                runs_total=total,
                runs=[
                    CampaignRun(
                        id=r.id, status=r.status, scheduled_for=r.scheduled_for, counts=run_counts[r.id]
                    )
                    for r in shown
                ],
            )
        responses.append(response)
    return responses


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
    if campaign.recurring:  # no occurrence is launched after this answers (`launch_occurrence`)
        record_schedule_change(session, schedule_id=campaign_schedule_id(campaign.id), op=SCHEDULE_PAUSE)
        campaign.status = CampaignStatus.PAUSED.value
        return campaign
    return _change(session, campaign, CampaignStatus.PAUSED)


async def resume_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    """Continue a paused campaign where it stopped (409 unless paused or already going)."""
    campaign = await _locked(session, campaign_id)
    if campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        return campaign  # a repeated click
    if campaign.status != CampaignStatus.PAUSED:
        raise Conflict(f"The campaign is {campaign.status}; only a paused one can be resumed.")
    if campaign.recurring:
        record_schedule_change(session, schedule_id=campaign_schedule_id(campaign.id), op=SCHEDULE_UNPAUSE)
        campaign.status = CampaignStatus.SCHEDULED.value
        return campaign
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
    if campaign.recurring:  # its schedule goes, and the occurrence still under way stops
        record_schedule_change(session, schedule_id=campaign_schedule_id(campaign.id), op=SCHEDULE_DELETE)
        campaign.status = CampaignStatus.CANCELLED.value
        for occurrence in await CampaignRepository(session).unfinished_occurrences(campaign.id):
            await cancel_campaign(session, occurrence.id)
        return campaign
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
