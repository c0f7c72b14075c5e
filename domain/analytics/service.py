"""Analytics queries: every figure is an aggregate computed in PostgreSQL over one tenant's rows.

Periods are local dates of the tenant's time zone (see `periods`); days are bucketed in that zone too.
The statements name the tenant explicitly (besides the session's automatic scoping) so the planner uses
the `(tenant_id, time)` covering indexes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Date, Float, cast, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.errors import NotFound
from domain.analytics import sentiment
from domain.analytics.models import FINAL_CALL_STATUSES, MessageSentiment, VoiceCall
from domain.analytics.periods import TimePeriod, Window, resolve
from domain.analytics.schemas import (
    AppointmentAnalyticsResponse,
    AppointmentBreakdown,
    CallQuality,
    CommunicationAnalyticsResponse,
    DashboardOverviewResponse,
    DayCount,
    JourneyAnalyticsResponse,
    PeriodInfo,
    PractitionerCount,
    RealtimeSnapshot,
    SentimentSummary,
    StageDuration,
    TicketSummary,
    VoiceCallAnalyticsResponse,
)
from domain.communications.models import Communication
from domain.enums import AppointmentStatus, Direction, JourneyInstanceStatus, StageStatus
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant
from domain.tickets.models import Ticket

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
    A = Appointment
    day = cast(func.timezone(window.timezone, A.start_time), Date).label("day")
    conditions = [A.tenant_id == tenant_id, A.start_time >= window.start, A.start_time < window.end]
    if channel_origin:
        conditions.append(A.source_channel == channel_origin)
    if practitioner_id:
        conditions.append(A.practitioner_id == practitioner_id)
    by_status: dict[str, int] = {}
    by_day: dict[object, int] = {}
    by_channel: dict[str, int] = {}
    by_practitioner: dict[uuid.UUID, int] = {}
    if include_breakdown:
        # One scan, four groupings: GROUPING() tells which set each row belongs to.
        stmt = (
            select(
                A.status,
                day,
                A.source_channel,
                A.practitioner_id,
                func.grouping(A.status).label("g_status"),
                func.grouping(day).label("g_day"),
                func.grouping(A.source_channel).label("g_channel"),
                func.count().label("n"),
            )
            .where(*conditions)
            .group_by(
                func.grouping_sets(
                    tuple_(A.status), tuple_(day), tuple_(A.source_channel), tuple_(A.practitioner_id)
                )
            )
        )
        for row in (await session.execute(stmt)).all():
            if row.g_status == 0:
                by_status[row.status] = row.n
            elif row.g_day == 0:
                by_day[row.day] = row.n
            elif row.g_channel == 0:
                by_channel[row.source_channel or "unknown"] = row.n
            else:
                by_practitioner[row.practitioner_id] = row.n
    else:
        stmt = select(A.status, func.count().label("n")).where(*conditions).group_by(A.status)
        by_status = {row.status: row.n for row in (await session.execute(stmt)).all()}
    total = sum(by_status.values())
    counts = {s.value: by_status.get(s.value, 0) for s in AppointmentStatus}
    finished = counts["completed"] + counts["no_show"]
    response = AppointmentAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        total=total,
        scheduled=counts["booked"],
        confirmed=counts["confirmed"],
        checked_in=counts["checked_in"],
        completed=counts["completed"],
        cancelled=counts["cancelled"],
        no_show=counts["no_show"],
        completion_rate=_rate(counts["completed"], finished),
        no_show_rate=_rate(counts["no_show"], finished),
        cancellation_rate=_rate(counts["cancelled"], total),
    )
    if include_breakdown:
        response.breakdown = AppointmentBreakdown(
            by_day=_every_day(window, by_day),
            by_status=counts,
            by_channel=by_channel,
            by_practitioner=await _practitioner_counts(session, by_practitioner),
        )
    return response


def _every_day(window: Window, counts: dict[object, int]) -> list[DayCount]:
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
    J = JourneyInstance
    in_window = lambda col: (col >= window.start) & (col < window.end)  # noqa: E731
    active_status = J.status == JourneyInstanceStatus.ACTIVE.value
    counts = (
        await session.execute(
            select(
                func.count().filter(active_status).label("active"),
                func.count().filter(in_window(J.started_at)).label("started"),
                func.count().filter(in_window(J.completed_at) & (J.status == "completed")).label("completed"),
                func.count().filter(in_window(J.cancelled_at) & (J.status == "cancelled")).label("cancelled"),
                func.count().filter(in_window(J.updated_at) & (J.status == "failed")).label("failed"),
            ).where(J.tenant_id == tenant_id)
        )
    ).one()
    cutoff = datetime.now(UTC) - timedelta(days=overdue_after_days)
    S = JourneyInstanceStage
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
    seconds = func.extract("epoch", S.completed_at - S.started_at)
    stage_stmt = (
        select(
            Journey.name.label("journey_name"),
            S.name.label("stage_name"),
            S.order_index,
            func.count().label("n"),
            func.avg(seconds).label("avg_seconds"),
        )
        .join(J, J.id == S.instance_id)
        .join(Journey, Journey.id == J.journey_id)
        .where(
            S.tenant_id == tenant_id,
            S.status == StageStatus.COMPLETED.value,
            S.started_at.is_not(None),
            in_window(S.completed_at),
        )
        .group_by(Journey.name, S.name, S.order_index)
        .order_by(Journey.name, S.order_index)
    )
    stages = [
        StageDuration(
            journey_name=r.journey_name,
            stage_name=r.stage_name,
            order_index=r.order_index,
            completed=r.n,
            average_seconds=round(float(r.avg_seconds), 1),
        )
        for r in (await session.execute(stage_stmt)).all()
    ]
    ended = counts.completed + counts.cancelled + counts.failed
    return JourneyAnalyticsResponse(
        tenant_id=tenant_id,
        period=period_info(window),
        active=counts.active,
        overdue=int(overdue or 0),
        overdue_after_days=overdue_after_days,
        started=counts.started,
        completed=counts.completed,
        cancelled=counts.cancelled,
        failed=counts.failed,
        completion_rate=_rate(counts.completed, ended),
        average_time_per_stage=stages,
    )


# ---- communication --------------------------------------------------------------------------------


async def communication_analytics(
    session: AsyncSession, tenant_id: uuid.UUID, window: Window
) -> CommunicationAnalyticsResponse:
    """Volumes by channel and status, delivery and read rates, reply times and sentiment of the window."""
    C = Communication
    period = [C.tenant_id == tenant_id, C.created_at >= window.start, C.created_at < window.end]
    grouped = (
        select(C.direction, C.channel, C.status, func.count().label("n"))
        .where(*period)
        .group_by(C.direction, C.channel, C.status)
    )
    by_channel: dict[str, int] = {}
    by_status: dict[str, int] = {}
    outbound = inbound = attempted = delivered = read = 0
    for row in (await session.execute(grouped)).all():
        by_channel[row.channel] = by_channel.get(row.channel, 0) + row.n
        by_status[row.status] = by_status.get(row.status, 0) + row.n
        if row.direction == Direction.INBOUND.value:
            inbound += row.n
            continue
        outbound += row.n
        attempted += row.n if row.status in ATTEMPTED else 0
        delivered += row.n if row.status in DELIVERED else 0
        read += row.n if row.status == "read" else 0
    replies, median = await _reply_times(session, tenant_id, window)
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
        sentiment=await _sentiment(session, tenant_id, window),
    )


async def _reply_times(
    session: AsyncSession, tenant_id: uuid.UUID, window: Window
) -> tuple[int, float | None]:
    """Replies: inbound messages of the window that answer the patient's latest outbound message (each
    outbound message counts once: the first inbound after it). Median seconds from send to reply."""
    inbound = aliased(Communication, name="inbound")
    outbound = aliased(Communication, name="outbound")
    previous = (
        select(
            outbound.id.label("outbound_id"),
            func.coalesce(outbound.sent_at, outbound.created_at).label("sent"),
        )
        .where(
            outbound.patient_id == inbound.patient_id,
            outbound.direction == Direction.OUTBOUND.value,
            outbound.created_at < inbound.created_at,
            outbound.tenant_id == tenant_id,
        )
        .order_by(outbound.created_at.desc())
        .limit(1)
        .lateral("previous")
    )
    pairs = (
        select(
            previous.c.outbound_id,
            func.min(func.extract("epoch", inbound.created_at - previous.c.sent)).label("seconds"),
        )
        .select_from(inbound)
        .join(previous, literal_column("true"))
        .where(
            inbound.tenant_id == tenant_id,
            inbound.direction == Direction.INBOUND.value,
            inbound.patient_id.is_not(None),
            inbound.created_at >= window.start,
            inbound.created_at < window.end,
        )
        .group_by(previous.c.outbound_id)
        .subquery()
    )
    row = (
        await session.execute(
            select(
                func.count().label("n"),
                func.percentile_cont(0.5).within_group(pairs.c.seconds).label("median"),
            )
        )
    ).one()
    return int(row.n), _seconds(row.median)


async def _sentiment(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> SentimentSummary:
    await sentiment.score_unscored(session, tenant_id, window.start, window.end)
    C, M = Communication, MessageSentiment
    row = (
        await session.execute(
            select(
                func.count(C.id).label("inbound"),
                func.count(M.id).label("scored"),
                func.avg(M.compound).label("average"),
                func.count().filter(M.label == "positive").label("positive"),
                func.count().filter(M.label == "neutral").label("neutral"),
                func.count().filter(M.label == "negative").label("negative"),
            )
            .select_from(C)
            .outerjoin(M, M.communication_id == C.id)
            .where(
                C.tenant_id == tenant_id,
                C.direction == Direction.INBOUND.value,
                C.created_at >= window.start,
                C.created_at < window.end,
            )
        )
    ).one()
    return SentimentSummary(
        analyzer=sentiment.ANALYZER,
        scored=row.scored,
        unscored=row.inbound - row.scored,
        average_compound=None if row.average is None else round(float(row.average), 4),
        positive=row.positive,
        neutral=row.neutral,
        negative=row.negative,
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
    in_window = lambda col: (col >= window.start) & (col < window.end)  # noqa: E731
    response = func.extract("epoch", T.first_response_at - T.created_at)
    row = (
        await session.execute(
            select(
                func.count()
                .filter(T.status.in_(("open", "in_progress", "waiting_on_patient")))
                .label("open"),
                func.count().filter(T.status == "waiting_on_patient").label("waiting"),
                func.count().filter(in_window(T.created_at)).label("opened"),
                func.count().filter(in_window(T.resolved_at)).label("resolved"),
                func.count()
                .filter(in_window(T.created_at) & (T.response_breached | T.resolution_breached))
                .label("breached"),
                func.percentile_cont(0.5)
                .within_group(response)
                .filter(in_window(T.created_at) & T.first_response_at.is_not(None))
                .label("median"),
            ).where(T.tenant_id == tenant_id)
        )
    ).one()
    return TicketSummary(
        open=row.open,
        waiting_on_patient=row.waiting,
        opened=row.opened,
        resolved=row.resolved,
        breached=row.breached,
        median_first_response_seconds=_seconds(row.median),
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
    A, C, T = Appointment, Communication, Ticket
    by_status = {
        r.status: r.n
        for r in await session.execute(
            select(A.status, func.count().label("n"))
            .where(A.tenant_id == tenant_id, A.start_time >= window.start, A.start_time < window.end)
            .group_by(A.status)
        )
    }
    active = await session.scalar(
        select(func.count()).where(
            JourneyInstance.tenant_id == tenant_id,
            JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
        )
    )
    messages = await session.scalar(
        select(func.count()).where(
            C.tenant_id == tenant_id, C.created_at >= window.start, C.created_at < window.end
        )
    )
    unfinished = T.status.in_(("open", "in_progress", "waiting_on_patient"))
    tickets = (
        await session.execute(
            select(
                func.count().label("open"),
                func.count().filter(T.response_breached | T.resolution_breached).label("breached"),
            ).where(T.tenant_id == tenant_id, unfinished)
        )
    ).one()
    return RealtimeSnapshot(
        tenant_id=tenant_id,
        generated_at=datetime.now(UTC),
        date=window.start_date,
        appointments_today=sum(by_status.values()),
        appointments_by_status=by_status,
        active_journeys=int(active or 0),
        messages_today=int(messages or 0),
        open_tickets=tickets.open,
        breached_open_tickets=tickets.breached,
    )
