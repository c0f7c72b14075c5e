"""Campaign request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from core.pagination import Page
from domain.campaigns.plan import CampaignStatus
from domain.enums import Channel
from domain.schemas import RequestModel, ResponseModel

MAX_PACE_PER_MINUTE = 60_000
# A cohort re-evaluated more often than daily would message the same people again within hours; the time
# of day is the first occurrence's (`starts_at`) and the send window's.
MIN_EVERY_DAYS, MAX_EVERY_DAYS = 1, 366
MAX_COOLDOWN_DAYS = 3650


class SendWindow(RequestModel):
    """The daily hours (your tenant's time zone) in which members are enrolled; `start` before `end`."""

    start: time = Field(description="Local time the window opens, e.g. `09:00`")
    end: time = Field(description="Local time the window closes, e.g. `17:00`")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise ValueError("start must be before end (a window within one day)")
        return self


class CampaignMessage(RequestModel):
    """A one-off message: its channel, and a template (rendered in each patient's language) or text."""

    channel: Channel
    template_name: str | None = Field(default=None, min_length=1, max_length=100)
    message: str | None = Field(default=None, min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.template_name is None) == (self.message is None):
            raise ValueError("give exactly one of template_name or message")
        return self


class Recurrence(RequestModel):
    """Repeat the campaign: an occurrence every `every_days` days (the first at `starts_at`, or at once),
    each re-evaluating the cohort and skipping the patients an earlier occurrence reached within
    `cooldown_days`."""

    every_days: int = Field(
        ge=MIN_EVERY_DAYS, le=MAX_EVERY_DAYS, description="Days between occurrences (1 to 366)"
    )
    cooldown_days: int = Field(
        default=0,
        ge=0,
        le=MAX_COOLDOWN_DAYS,
        description="Skip (reason `cooldown`) a patient an earlier occurrence reached within this many days;"
        " 0: none",
    )


class CampaignCreate(RequestModel):
    """Body of `POST /campaigns`: place a cohort's patients on a journey, or send each of them a message."""

    tenant_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=200)
    cohort_id: uuid.UUID
    journey_id: uuid.UUID | None = Field(default=None, description="The journey to enrol them in, or:")
    message: CampaignMessage | None = Field(default=None, description="The one message to send each")
    starts_at: AwareDatetime | None = Field(
        default=None, description="When to freeze the cohort and begin; omitted: at once"
    )
    send_window: SendWindow | None = Field(
        default=None, description="Enrol only between these local times each day; omitted: any time"
    )
    pace_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PACE_PER_MINUTE,
        description="At most this many members enrolled per minute; omitted: as fast as batches go",
    )
    recurrence: Recurrence | None = Field(
        default=None,
        description="Repeat on a schedule: each occurrence is a campaign of its own; omitted: run once",
    )

    @model_validator(mode="after")
    def _journey_or_message(self) -> Self:
        if (self.journey_id is None) == (self.message is None):
            raise ValueError("give exactly one of journey_id or message")
        return self


class CampaignCounts(ResponseModel):
    """Where the members are: frozen `members`, `pending`, `enrolled` (a journey campaign), `sent` (a
    message campaign: the message recorded and handed on), and `skipped` by reason."""

    members: int = 0
    pending: int = 0
    enrolled: int = 0
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)


class CampaignRun(ResponseModel):
    """One occurrence of a recurring campaign: a campaign of its own (`GET /campaigns/{id}`)."""

    id: uuid.UUID
    status: CampaignStatus
    scheduled_for: datetime
    counts: CampaignCounts = Field(default_factory=CampaignCounts)


class RecurrenceView(ResponseModel):
    """A recurring campaign's schedule and its latest runs (all of them: `GET /campaigns?definition_id=`)."""

    every_days: int
    cooldown_days: int
    schedule_id: str = Field(description="The Temporal Schedule firing its occurrences")
    schedule_state: str = Field(description="`active`, `paused`, or `deleted` (cancelled)")
    next_run_at: datetime | None = Field(description="The schedule's next fire; none while paused or over")
    runs_total: int
    runs: list[CampaignRun] = Field(description="The latest occurrences, newest first")


class CampaignResponse(ResponseModel):
    """A campaign as the API returns it, with its counts."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    cohort_id: uuid.UUID
    journey_id: uuid.UUID | None
    message: CampaignMessage | None = None
    status: CampaignStatus
    starts_at: datetime | None
    send_window: SendWindow | None = None
    pace_per_minute: int | None
    frozen_at: datetime | None
    last_batch_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    counts: CampaignCounts = Field(
        default_factory=CampaignCounts, description="A recurring campaign's: the sum over its runs"
    )
    recurrence: RecurrenceView | None = Field(default=None, description="Set on a recurring campaign")
    definition_id: uuid.UUID | None = Field(
        default=None, description="On an occurrence: the recurring campaign it is a run of"
    )
    scheduled_for: datetime | None = Field(default=None, description="On an occurrence: its schedule's fire")


class CampaignListResponse(Page[CampaignResponse]):
    """A page of campaigns."""


class ResultRow(ResponseModel):
    """Enrolled members counted by what happened after their first message of the campaign's journey."""

    channel: str
    language: str
    messaged: int = Field(description="Enrolled members the journey has sent (or queued) a message to")
    sent: int = Field(description="... whose message went out")
    delivered: int = Field(description="... whose message the provider reported delivered (or read)")
    replied: int = Field(description="... who wrote back on that channel after it")
    opted_out: int = Field(description="... who opted out of that channel after it")
    booked: int = Field(description="... who booked an appointment within `booked_within_days` of it")


class CampaignResults(ResponseModel):
    """`GET /campaigns/{id}/results`: the campaign's outcome, by channel and language and in total."""

    campaign_id: uuid.UUID
    status: CampaignStatus
    booked_within_days: int
    members: int
    enrolled: int
    sent: int
    skipped: dict[str, int]
    total: ResultRow
    by_channel_and_language: list[ResultRow]
