"""Recurring campaigns: a definition, its Temporal Schedule, and when it fires next.

A campaign created with a `recurrence` is a definition: it reaches no one itself. Its schedule
(`campaign-schedule-<id>`) fires every `every_days` days from `starts_at` (the first fire at once when
`starts_at` is omitted or past); each fire starts a `CampaignOccurrenceWorkflow`, whose one activity
launches an occurrence (`service.launch_occurrence`): a campaign like a one-off one, with its own
`CampaignWorkflow`, whose batches skip the patients an earlier occurrence reached within the cool-down.

The schedule is created, paused, unpaused and deleted through the outbox (`record_schedule`,
`record_schedule_change`), in the definition's own transaction: a crash after the commit loses nothing, and
a Temporal outage only delays it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.gateway import ScheduledStart, WorkflowStart, ids_of
from domain.campaigns.models import Campaign
from domain.campaigns.plan import (
    OCCURRENCE_WORKFLOW_NAME,
    CampaignStatus,
    OccurrenceInput,
    campaign_schedule_id,
    occurrence_workflow_prefix,
)

RUNS_SHOWN = 20  # the latest occurrences a definition's view lists


def first_fire(starts_at: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """When a new definition's first occurrence is due (whole seconds: a schedule's resolution), and
    whether that is at once (no `starts_at`, or one already past)."""
    first = (starts_at or now).replace(microsecond=0)
    return first, starts_at is None or starts_at <= now


def schedule_of(definition: Campaign, *, fire_at_once: bool) -> ScheduledStart:
    """The definition's Temporal Schedule: an occurrence every `every_days` from its `starts_at`."""
    assert definition.every_days is not None and definition.starts_at is not None
    return ScheduledStart(
        schedule_id=campaign_schedule_id(definition.id),
        start=WorkflowStart(
            workflow=OCCURRENCE_WORKFLOW_NAME,
            workflow_id=occurrence_workflow_prefix(definition.id),
            input=OccurrenceInput(tenant_id=str(definition.tenant_id), definition_id=str(definition.id)),
            search_attributes=ids_of(definition.tenant_id),
        ),
        every=timedelta(days=definition.every_days),
        first_at=definition.starts_at,
        fire_at_once=fire_at_once,
    )


def schedule_state(definition: Campaign) -> str:
    """`active`, `paused` or `deleted`: what the definition's status made of its schedule."""
    if definition.status == CampaignStatus.PAUSED:
        return "paused"
    return "active" if definition.status == CampaignStatus.SCHEDULED else "deleted"


def next_run_at(definition: Campaign, now: datetime) -> datetime | None:
    """The schedule's next fire after `now` (none while paused or once cancelled): `starts_at` plus a whole
    number of intervals, the same arithmetic the schedule's interval does."""
    if definition.status != CampaignStatus.SCHEDULED or definition.every_days is None:
        return None
    first = definition.starts_at or definition.created_at
    if first > now:
        return first
    every = timedelta(days=definition.every_days)
    return first + every * ((now - first) // every + 1)
