"""Analytics figures: every one an aggregate computed in PostgreSQL over one tenant's rows.

Periods are local dates of the tenant's time zone (see `periods`); days are bucketed in that zone too.
Period counts of appointments, messages and journeys, reply times, stage durations and sentiment come
from the daily rollups the database keeps at write time (`rollups`, migration 0008). What is "now"
(active and overdue journeys, open tickets), voice calls and tickets are read from their tables through
index ranges (fast enough at scale: see BENCHMARKS.md). The statements name the tenant explicitly
(besides the session's automatic scoping).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from domain.analytics import rollups, sentiment
from domain.analytics.models import FINAL_CALL_STATUSES, VoiceCall
from domain.analytics.periods import TimePeriod, Window, resolve
from domain.analytics.schemas import (
    AppointmentAnalyticsResponse,
    AppointmentBreakdown,
    CallQuality,
    CampaignProgress,
    CommunicationAnalyticsResponse,
    DashboardOverviewResponse,
    DayCount,
    JourneyAnalyticsResponse,
    PeriodInfo,
    PractitionerCount,
    RealtimeSnapshot,
    SentimentSummary,
    TicketSummary,
    VoiceCallAnalyticsResponse,
)
from domain.campaigns.models import Campaign
from domain.campaigns.plan import CampaignStatus
from domain.campaigns.repository import CampaignRepository
from domain.enums import AppointmentStatus, Direction, JourneyInstanceStatus, StageStatus
from domain.journeys.models import JourneyInstance, JourneyInstanceStage
from domain.practitioners.models import Practitioner
from domain.tenants.models import Tenant
from domain.tickets.models import Ticket

CAMPAIGNS_IN_PROGRESS = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
LIVE_CAMPAIGNS = 20  # the live view's list stays small whatever the tenant's history

DEFAULT_OVERDUE_DAYS = 7
SHORT_CALL_SECONDS = 10  # a connected call this short was most likely dropped
ATTEMPTED = ("sent", "delivered", "read", "failed")
DELIVERED = ("delivered", "read")


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _seconds(value: object) -> float | None:
    return None if value is None else round(float(value), 1)  # type: ignore[arg-type]


async def tenant_window(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    period: TimePeriod,
    start_date: object = None,
    end_date: object = None,
) -> Window:
    """The period's window in the tenant's time zone (422 for an unusable CUSTOM range)."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found.")
    return resolve(period, tenant.timezone, start_date=start_date, end_date=end_date)  # type: ignore[arg-type]


def period_info(window: Window) -> PeriodInfo:
    """What the response says about its period."""
    return PeriodInfo(
        time_period=window.period,
        timezone=window.timezone,
        start_date=window.start_date,
        end_date=window.end_date,
    )


# ---- appointments ---------------------------------------------------------------------------------


async def appointment_analytics(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    *,
    channel_origin: str | None = None,
    practitioner_id: uuid.UUID | None = None,
    include_breakdown: bool = False,
) -> AppointmentAnalyticsResponse:
    """Counts and rates of the appointments starting in the window; with the series when asked."""
    counts = await rollups.appointment_counts(
        session,
        tenant_id,
        window,
        channel_origin=channel_origin,
        practitioner_id=practitioner_id,
        include_breakdown=include_breakdown,
    )
    total = sum(counts.by_status.values())
    by_status = {s.value: counts.by_status.get(s.value, 0) for s in AppointmentStatus}
    finished = by_status["completed"] + by_status["no_show"]
    response = AppointmentAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        total=total,
        scheduled=by_status["booked"],
        confirmed=by_status["confirmed"],
        checked_in=by_status["checked_in"],
        completed=by_status["completed"],
        cancelled=by_status["cancelled"],
        no_show=by_status["no_show"],
        completion_rate=_rate(by_status["completed"], finished),
        no_show_rate=_rate(by_status["no_show"], finished),
        cancellation_rate=_rate(by_status["cancelled"], total),
    )
    if include_breakdown:
        response.breakdown = AppointmentBreakdown(
            by_day=_every_day(window, counts.by_day),
            by_status=by_status,
            by_channel=counts.by_channel,
            by_practitioner=await _practitioner_counts(session, counts.by_practitioner),
        )
    return response


def _every_day(window: Window, counts: dict[date, int]) -> list[DayCount]:
    days, day = [], window.start_date
    while day <= window.end_date:
        days.append(DayCount(date=day, count=counts.get(day, 0)))
        day += timedelta(days=1)
    return days


async def _practitioner_counts(
    session: AsyncSession, counts: dict[uuid.UUID, int]
) -> list[PractitionerCount]:
    if not counts:
        return []
    stmt = select(Practitioner.id, Practitioner.first_name, Practitioner.last_name).where(
        Practitioner.id.in_(list(counts))
    )
    names = {r.id: f"Dr. {r.first_name} {r.last_name}" for r in (await session.execute(stmt)).all()}
    rows = [
        PractitionerCount(practitioner_id=pid, name=names.get(pid, ""), count=n) for pid, n in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r.count, r.name))


# ---- journeys -------------------------------------------------------------------------------------


async def journey_analytics(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    *,
    overdue_after_days: int = DEFAULT_OVERDUE_DAYS,
) -> JourneyAnalyticsResponse:
    """Active and overdue instances now; started, completed, cancelled, failed in the window; stage times."""
    J, S = JourneyInstance, JourneyInstanceStage
    active_status = J.status == JourneyInstanceStatus.ACTIVE.value
    active = await session.scalar(select(func.count()).where(J.tenant_id == tenant_id, active_status))
    cutoff = datetime.now(UTC) - timedelta(days=overdue_after_days)
    overdue = await session.scalar(
        select(func.count(func.distinct(S.instance_id)))
        .join(J, J.id == S.instance_id)
        .where(
            S.tenant_id == tenant_id,
            active_status,
            S.status == StageStatus.ACTIVE.value,
            S.started_at < cutoff,
        )
    )
    events = await rollups.journey_events(session, tenant_id, window)
    ended = events["completed"] + events["cancelled"] + events["failed"]
    return JourneyAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        active=int(active or 0),
        overdue=int(overdue or 0),
        overdue_after_days=overdue_after_days,
        started=events["started"],
        completed=events["completed"],
        cancelled=events["cancelled"],
        failed=events["failed"],
        completion_rate=_rate(events["completed"], ended),
        average_time_per_stage=await rollups.stage_durations(session, tenant_id, window),
    )


# ---- communication --------------------------------------------------------------------------------


async def communication_analytics(
    session: AsyncSession, tenant_id: uuid.UUID, window: Window
) -> CommunicationAnalyticsResponse:
    """Volumes by channel and status, delivery and read rates, reply times and sentiment of the window."""
    by_channel: dict[str, int] = {}
    by_status: dict[str, int] = {}
    outbound = inbound = attempted = delivered = read = 0
    for row in await rollups.message_counts(session, tenant_id, window):
        by_channel[row.channel] = by_channel.get(row.channel, 0) + row.n
        by_status[row.status] = by_status.get(row.status, 0) + row.n
        if row.direction == Direction.INBOUND.value:
            inbound += row.n
            continue
        outbound += row.n
        attempted += row.n if row.status in ATTEMPTED else 0
        delivered += row.n if row.status in DELIVERED else 0
        read += row.n if row.status == "read" else 0
    replies, median = await rollups.reply_times(session, tenant_id, window)
    scores = await rollups.sentiment_totals(session, tenant_id, window)
    return CommunicationAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        total=outbound + inbound,
        outbound=outbound,
        inbound=inbound,
        by_channel=by_channel,
        by_status=by_status,
        delivery_rate=_rate(delivered, attempted),
        read_rate=_rate(read, delivered),
        replies=replies,
        median_response_seconds=median,
        sentiment=SentimentSummary(
            analyzer=sentiment.ANALYZER,
            scored=scores.scored,
            unscored=inbound - scores.scored,  # legacy rows: `prm analytics backfill-sentiment` scores them
            average_compound=scores.average_compound,
            positive=scores.positive,
            neutral=scores.neutral,
            negative=scores.negative,
        ),
    )


# ---- voice calls ----------------------------------------------------------------------------------


async def voice_call_analytics(
    session: AsyncSession, tenant_id: uuid.UUID, window: Window
) -> VoiceCallAnalyticsResponse:
    """Calls started in the window: counts by status and direction, answer rate, duration, quality."""
    V = VoiceCall
    period = [V.tenant_id == tenant_id, V.started_at >= window.start, V.started_at < window.end]
    by_status = {
        r.status: r.n
        for r in (
            await session.execute(select(V.status, func.count().label("n")).where(*period).group_by(V.status))
        )
    }
    by_direction = {
        (r.direction or "unknown"): r.n
        for r in (
            await session.execute(
                select(V.direction, func.count().label("n")).where(*period).group_by(V.direction)
            )
        )
    }
    completed = V.status == "completed"
    stats = (
        await session.execute(
            select(
                func.count().filter(V.answered).label("answered"),
                func.coalesce(func.sum(V.duration_seconds).filter(completed), 0).label("total"),
                func.avg(cast(V.duration_seconds, Float)).filter(completed).label("average"),
                func.percentile_cont(0.5).within_group(V.duration_seconds).filter(completed).label("median"),
                func.count().filter(completed & (V.duration_seconds < SHORT_CALL_SECONDS)).label("short"),
            ).where(*period)
        )
    ).one()
    total = sum(by_status.values())
    finished = sum(n for s, n in by_status.items() if s in FINAL_CALL_STATUSES)
    n_completed = by_status.get("completed", 0)
    failed = sum(by_status.get(s, 0) for s in ("busy", "failed", "no-answer"))
    return VoiceCallAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        total_calls=total,
        by_status=by_status,
        by_direction=by_direction,
        answered=stats.answered,
        answer_rate=_rate(stats.answered, total),
        total_duration_seconds=int(stats.total),
        average_duration_seconds=_seconds(stats.average),
        median_duration_seconds=_seconds(stats.median),
        quality=CallQuality(
            completion_rate=_rate(n_completed, finished),
            short_call_rate=_rate(stats.short, n_completed),
            failure_rate=_rate(failed, finished),
        ),
    )


# ---- tickets, dashboard, real time ----------------------------------------------------------------


async def ticket_summary(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> TicketSummary:
    """Open tickets now; opened, resolved and breached in the window; median time to first response."""
    T = Ticket
    # Three index ranges (unfinished tickets, created in the window, resolved in the window) rather than a
    # pass over every ticket the clinic ever had.
    unfinished = (
        await session.execute(
            select(
                func.count().label("open"),
                func.count().filter(T.status == "waiting_on_patient").label("waiting"),
            ).where(T.tenant_id == tenant_id, T.status.in_(("open", "in_progress", "waiting_on_patient")))
        )
    ).one()
    response = func.extract("epoch", T.first_response_at - T.created_at)
    created = (
        await session.execute(
            select(
                func.count().label("opened"),
                func.count().filter(T.response_breached | T.resolution_breached).label("breached"),
                func.percentile_cont(0.5)
                .within_group(response)
                .filter(T.first_response_at.is_not(None))
                .label("median"),
            ).where(T.tenant_id == tenant_id, T.created_at >= window.start, T.created_at < window.end)
        )
    ).one()
    resolved = await session.scalar(
        select(func.count()).where(
            T.tenant_id == tenant_id, T.resolved_at >= window.start, T.resolved_at < window.end
        )
    )
    return TicketSummary(
        open=unfinished.open,
        waiting_on_patient=unfinished.waiting,
        opened=created.opened,
        resolved=int(resolved or 0),
        breached=created.breached,
        median_first_response_seconds=_seconds(created.median),
    )


async def dashboard(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> DashboardOverviewResponse:
    """Every metric of the window in one response."""
    return DashboardOverviewResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        generated_at=datetime.now(UTC),
        appointments=await appointment_analytics(session, tenant_id, window, include_breakdown=True),
        journeys=await journey_analytics(session, tenant_id, window),
        communication=await communication_analytics(session, tenant_id, window),
        voice_calls=await voice_call_analytics(session, tenant_id, window),
        tickets=await ticket_summary(session, tenant_id, window),
    )


async def realtime_snapshot(session: AsyncSession, tenant_id: uuid.UUID) -> RealtimeSnapshot:
    """Today's live numbers (tenant's time zone): small enough to recompute on every change."""
    window = await tenant_window(session, tenant_id, TimePeriod.TODAY)
    by_status, messages = await rollups.today_counts(session, tenant_id, window.start_date)
    active = await session.scalar(
        select(func.count()).where(
            JourneyInstance.tenant_id == tenant_id,
            JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
        )
    )
    T = Ticket
    unfinished = T.status.in_(("open", "in_progress", "waiting_on_patient"))
    tickets = (
        await session.execute(
            select(
                func.count().label("open"),
                func.count().filter(T.response_breached | T.resolution_breached).label("breached"),
            ).where(T.tenant_id == tenant_id, unfinished)
        )
    ).one()
    campaigns = list(
        await session.scalars(
            select(Campaign)
            .where(Campaign.tenant_id == tenant_id, Campaign.status.in_(CAMPAIGNS_IN_PROGRESS))
            .order_by(Campaign.created_at.desc(), Campaign.id)
            .limit(LIVE_CAMPAIGNS)
        )
    )
    counts = await CampaignRepository(session).counts([c.id for c in campaigns])
    return RealtimeSnapshot(
        tenant_id=tenant_id,
        generated_at=datetime.now(UTC),
        date=window.start_date,
        appointments_today=sum(by_status.values()),
        appointments_by_status=by_status,
        active_journeys=int(active or 0),
        messages_today=messages,
        open_tickets=tickets.open,
        breached_open_tickets=tickets.breached,
        campaigns=[
            CampaignProgress(
                id=c.id,
                name=c.name,
                status=c.status,
                members=counts[c.id].members,
                enrolled=counts[c.id].enrolled,
                pending=counts[c.id].pending,
                skipped=sum(counts[c.id].skipped.values()),
            )
            for c in campaigns
        ],
    )
