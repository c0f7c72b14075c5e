"""Analytics response shapes (the reference's names), all PHI-free aggregates."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.analytics.periods import TimePeriod


class PeriodInfo(BaseModel):
    """The period a response covers, in the tenant's time zone."""

    time_period: TimePeriod
    timezone: str
    start_date: date
    end_date: date


class DayCount(BaseModel):
    """A count on one local date."""

    date: date
    count: int


class PractitionerCount(BaseModel):
    """A count for one practitioner."""

    practitioner_id: uuid.UUID
    name: str
    count: int


class AppointmentBreakdown(BaseModel):
    """Dimensional series of the appointments in the period."""

    by_day: list[DayCount]
    by_status: dict[str, int]
    by_channel: dict[str, int]
    by_practitioner: list[PractitionerCount]


class AppointmentAnalyticsResponse(BaseModel):
    """Appointments whose start falls in the period."""

    tenant_id: uuid.UUID
    period: PeriodInfo
    total: int
    scheduled: int
    confirmed: int
    checked_in: int
    completed: int
    cancelled: int
    no_show: int
    completion_rate: float
    no_show_rate: float
    cancellation_rate: float
    breakdown: AppointmentBreakdown | None = None


class StageDuration(BaseModel):
    """How long instances spent on one stage (completed stages in the period)."""

    journey_name: str
    stage_name: str
    order_index: int
    completed: int
    average_seconds: float


class JourneyAnalyticsResponse(BaseModel):
    """Journey instances: now (active, overdue) and in the period (started, completed, cancelled, failed).

    Overdue: an active instance whose current stage has been active for more than `overdue_after_days`."""

    tenant_id: uuid.UUID
    period: PeriodInfo
    active: int
    overdue: int
    overdue_after_days: int
    started: int
    completed: int
    cancelled: int
    failed: int
    completion_rate: float
    average_time_per_stage: list[StageDuration]


class SentimentSummary(BaseModel):
    """Sentiment of the patients' inbound messages of the period (VADER compound scores)."""

    analyzer: str
    scored: int
    unscored: int
    average_compound: float | None
    positive: int
    neutral: int
    negative: int


class CommunicationAnalyticsResponse(BaseModel):
    """Messages created in the period."""

    tenant_id: uuid.UUID
    period: PeriodInfo
    total: int
    outbound: int
    inbound: int
    by_channel: dict[str, int]
    by_status: dict[str, int]
    delivery_rate: float
    read_rate: float
    replies: int
    median_response_seconds: float | None
    sentiment: SentimentSummary


class CallQuality(BaseModel):
    """How calls went: finished calls that connected, were cut short, or failed to connect."""

    completion_rate: float
    short_call_rate: float
    failure_rate: float


class VoiceCallAnalyticsResponse(BaseModel):
    """Voice calls started in the period, from Twilio's status callbacks."""

    tenant_id: uuid.UUID
    period: PeriodInfo
    total_calls: int
    by_status: dict[str, int]
    by_direction: dict[str, int]
    answered: int
    answer_rate: float
    total_duration_seconds: int
    average_duration_seconds: float | None
    median_duration_seconds: float | None
    quality: CallQuality


class TicketSummary(BaseModel):
    """Tickets: open now, and opened / resolved / breached in the period."""

    open: int
    waiting_on_patient: int
    opened: int
    resolved: int
    breached: int
    median_first_response_seconds: float | None


class DashboardOverviewResponse(BaseModel):
    """Every metric in one response, for loading a dashboard."""

    tenant_id: uuid.UUID
    period: PeriodInfo
    generated_at: datetime
    appointments: AppointmentAnalyticsResponse
    journeys: JourneyAnalyticsResponse
    communication: CommunicationAnalyticsResponse
    voice_calls: VoiceCallAnalyticsResponse
    tickets: TicketSummary


class CampaignProgress(BaseModel):
    """A campaign not yet over, as the real-time stream shows it."""

    id: uuid.UUID
    name: str
    status: str
    members: int
    enrolled: int
    pending: int
    skipped: int


class RealtimeSnapshot(BaseModel):
    """The live numbers of today (tenant's time zone), pushed on every change."""

    tenant_id: uuid.UUID
    generated_at: datetime
    date: date
    appointments_today: int
    appointments_by_status: dict[str, int]
    active_journeys: int
    messages_today: int
    open_tickets: int
    breached_open_tickets: int
    campaigns: list[CampaignProgress] = Field(
        default_factory=list, description="Campaigns scheduled, running or paused, newest first (at most 20)"
    )
