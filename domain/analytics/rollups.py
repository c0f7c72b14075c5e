"""Period counts read from the daily rollups the database keeps (migration 0008), a few rows per day.

Triggers keep the rollups exact on every write; `day` is the local date in the tenant's time zone, so a
window's local dates `start_date..end_date` select exactly the rows of its UTC instants `[start, end)`.
Rows summing to 0 (left behind by deletes and status moves) are skipped. Every statement names the tenant
(besides the session's automatic scoping).

The one read here from a base table: appointment counts under filters the rollups do not cover (a
practitioner, or a channel together with the breakdowns), which scan one practitioner's appointments of
the period, or the period's entries of the covering index.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Date, Select, cast, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from domain.analytics.models import (
    AppointmentDaily,
    AppointmentPractitionerDaily,
    CommunicationDaily,
    JourneyDaily,
    JourneyStageDaily,
    Reply,
    ReplyDaily,
    SentimentDaily,
)
from domain.analytics.periods import Window
from domain.analytics.schemas import StageDuration
from domain.journeys.models import Journey
from domain.scheduling.models import Appointment

BUCKET_GROWTH = 1.02  # analytics_reply_bucket: bucket b > 0 holds response times in (1.02^(b-1), 1.02^b]


@dataclass
class AppointmentCounts:
    """Appointments of a period by status; by local day, booking channel and practitioner when asked."""

    by_status: dict[str, int] = field(default_factory=dict)
    by_day: dict[date, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_practitioner: dict[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageCount:
    """Messages of a period with one direction, channel and status."""

    direction: str
    channel: str
    status: str
    n: int


@dataclass(frozen=True)
class SentimentTotals:
    """Sentiment scores of a period's inbound messages."""

    scored: int
    average_compound: float | None
    positive: int
    neutral: int
    negative: int


async def appointment_counts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    *,
    channel_origin: str | None = None,
    practitioner_id: uuid.UUID | None = None,
    include_breakdown: bool = False,
) -> AppointmentCounts:
    """Counts of the appointments starting in the window: from the rollups whenever they cover the filters."""
    if practitioner_id is None and not (channel_origin and include_breakdown):
        return await _appointment_counts_from_rollups(
            session, tenant_id, window, channel_origin=channel_origin, include_breakdown=include_breakdown
        )
    return await _appointment_counts_from_appointments(
        session,
        tenant_id,
        window,
        channel_origin=channel_origin,
        practitioner_id=practitioner_id,
        include_breakdown=include_breakdown,
    )


async def _appointment_counts_from_rollups(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    *,
    channel_origin: str | None,
    include_breakdown: bool,
) -> AppointmentCounts:
    D = AppointmentDaily
    conditions = [D.tenant_id == tenant_id, D.day.between(window.start_date, window.end_date)]
    if channel_origin:
        conditions.append(D.source_channel == channel_origin)
    n = func.sum(D.n)
    stmt = (
        select(D.day, D.status, D.source_channel, n.label("n"))
        .where(*conditions)
        .group_by(D.day, D.status, D.source_channel)
        .having(n != 0)
    )
    counts = AppointmentCounts()
    for row in (await session.execute(stmt)).all():
        counts.by_status[row.status] = counts.by_status.get(row.status, 0) + row.n
        counts.by_day[row.day] = counts.by_day.get(row.day, 0) + row.n
        channel = row.source_channel or "unknown"
        counts.by_channel[channel] = counts.by_channel.get(channel, 0) + row.n
    if include_breakdown:
        P = AppointmentPractitionerDaily
        per_practitioner = func.sum(P.n)
        rows = await session.execute(
            select(P.practitioner_id, per_practitioner.label("n"))
            .where(P.tenant_id == tenant_id, P.day.between(window.start_date, window.end_date))
            .group_by(P.practitioner_id)
            .having(per_practitioner != 0)
        )
        counts.by_practitioner = {row.practitioner_id: row.n for row in rows}
    return counts


async def _appointment_counts_from_appointments(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    *,
    channel_origin: str | None,
    practitioner_id: uuid.UUID | None,
    include_breakdown: bool,
) -> AppointmentCounts:
    A = Appointment
    day = cast(func.timezone(window.timezone, A.start_time), Date).label("day")
    conditions = [A.tenant_id == tenant_id, A.start_time >= window.start, A.start_time < window.end]
    if channel_origin:
        conditions.append(A.source_channel == channel_origin)
    if practitioner_id:
        conditions.append(A.practitioner_id == practitioner_id)
    counts = AppointmentCounts()
    if not include_breakdown:
        stmt: Select = select(A.status, func.count().label("n")).where(*conditions).group_by(A.status)
        counts.by_status = {row.status: row.n for row in (await session.execute(stmt)).all()}
        return counts
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
            counts.by_status[row.status] = row.n
        elif row.g_day == 0:
            counts.by_day[row.day] = row.n
        elif row.g_channel == 0:
            counts.by_channel[row.source_channel or "unknown"] = row.n
        else:
            counts.by_practitioner[row.practitioner_id] = row.n
    return counts


async def message_counts(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> list[MessageCount]:
    """Messages created in the window, by direction, channel and current status."""
    D = CommunicationDaily
    n = func.sum(D.n)
    stmt = (
        select(D.direction, D.channel, D.status, n.label("n"))
        .where(D.tenant_id == tenant_id, D.day.between(window.start_date, window.end_date))
        .group_by(D.direction, D.channel, D.status)
        .having(n != 0)
    )
    return [MessageCount(r.direction, r.channel, r.status, int(r.n)) for r in await session.execute(stmt)]


async def sentiment_totals(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> SentimentTotals:
    """Scored inbound messages of the window: how many, their average compound score, counts per label."""
    S = SentimentDaily
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(S.scored), 0).label("scored"),
                func.sum(S.compound_sum).label("compound_sum"),
                func.coalesce(func.sum(S.positive), 0).label("positive"),
                func.coalesce(func.sum(S.neutral), 0).label("neutral"),
                func.coalesce(func.sum(S.negative), 0).label("negative"),
            ).where(S.tenant_id == tenant_id, S.day.between(window.start_date, window.end_date))
        )
    ).one()
    scored = int(row.scored)
    average = round(float(row.compound_sum / scored), 4) if scored else None
    return SentimentTotals(scored, average, int(row.positive), int(row.neutral), int(row.negative))


async def reply_times(
    session: AsyncSession, tenant_id: uuid.UUID, window: Window
) -> tuple[int, float | None]:
    """Replies received in the window (each the first inbound message after an outbound one) and the exact
    median of their response seconds.

    The per-day histogram of response-time buckets (2 % wide) gives the count and says which bucket holds
    the middle rank(s); the median itself is then read from the replies of that one bucket in the window
    (an index range of ~1 % of them), so it equals `percentile_cont(0.5)` over every reply."""
    H = ReplyDaily
    n = func.sum(H.n)
    histogram = [
        (row.bucket, int(row.n))
        for row in await session.execute(
            select(H.bucket, n.label("n"))
            .where(H.tenant_id == tenant_id, H.day.between(window.start_date, window.end_date))
            .group_by(H.bucket)
            .having(n > 0)
            .order_by(H.bucket)
        )
    ]
    total = sum(count for _, count in histogram)
    if not total:
        return 0, None
    low_rank, high_rank = (total - 1) // 2, total // 2
    low = await _ranked_seconds(session, tenant_id, window, histogram, low_rank)
    high = (
        low
        if high_rank == low_rank
        else await _ranked_seconds(session, tenant_id, window, histogram, high_rank)
    )
    return total, round(low + (high - low) * 0.5, 1)  # percentile_cont's interpolation


async def _ranked_seconds(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    window: Window,
    histogram: list[tuple[int, int]],
    rank: int,
) -> float:
    """The response seconds of rank `rank` (0-based, ascending) among the window's replies."""
    bucket, below, count = _locate(histogram, rank)
    R = Reply
    value = await session.scalar(
        select(R.response_seconds)
        .where(
            R.tenant_id == tenant_id,
            R.bucket == bucket,
            R.replied_at >= window.start,
            R.replied_at < window.end,
        )
        .order_by(R.response_seconds)
        .offset(rank - below)
        .limit(1)
    )
    if value is None:  # a reply committed between the two reads moved the ranks: the bucket's estimate
        return _bucket_estimate(bucket, (rank - below + 0.5) / count)
    return float(value)


def _locate(histogram: list[tuple[int, int]], rank: int) -> tuple[int, int, int]:
    """The bucket holding rank `rank`, how many replies lie below it and how many it holds."""
    below = 0
    for bucket, count in histogram:
        if rank < below + count:
            return bucket, below, count
        below += count
    raise ValueError("rank beyond the histogram")


def _bucket_estimate(bucket: int, fraction: float) -> float:
    """A response time `fraction` of the way through `bucket` (log scale), within 1 % of any value in it."""
    if bucket <= 0:
        return 1.0
    return math.exp((bucket - 1 + min(max(fraction, 0.0), 1.0)) * math.log(BUCKET_GROWTH))


async def journey_events(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> dict[str, int]:
    """Journey instances started, completed, cancelled and failed in the window."""
    J = JourneyDaily
    n = func.sum(J.n)
    rows = await session.execute(
        select(J.event, n.label("n"))
        .where(J.tenant_id == tenant_id, J.day.between(window.start_date, window.end_date))
        .group_by(J.event)
    )
    counts = {row.event: int(row.n) for row in rows}
    return {event: counts.get(event, 0) for event in ("started", "completed", "cancelled", "failed")}


async def stage_durations(session: AsyncSession, tenant_id: uuid.UUID, window: Window) -> list[StageDuration]:
    """Stages completed in the window, per journey and stage: how many and their average duration."""
    S = JourneyStageDaily
    n, seconds = func.sum(S.n), func.sum(S.seconds_sum)
    rows = await session.execute(
        select(Journey.name, S.stage_name, S.order_index, n.label("n"), seconds.label("seconds"))
        .join(Journey, Journey.id == S.journey_id)
        .where(S.tenant_id == tenant_id, S.day.between(window.start_date, window.end_date))
        .group_by(Journey.name, S.stage_name, S.order_index)
        .having(n != 0)
        .order_by(Journey.name, S.order_index)
    )
    return [
        StageDuration(
            journey_name=row.name,
            stage_name=row.stage_name,
            order_index=row.order_index,
            completed=int(row.n),
            average_seconds=round(float(row.seconds / row.n), 1),
        )
        for row in rows
    ]


async def today_counts(session: AsyncSession, tenant_id: uuid.UUID, day: date) -> tuple[dict[str, int], int]:
    """Appointments starting on the local `day` by status, and the number of messages created that day."""
    A, C = AppointmentDaily, CommunicationDaily
    n = func.sum(A.n)
    by_status = {
        row.status: int(row.n)
        for row in await session.execute(
            select(A.status, n.label("n"))
            .where(A.tenant_id == tenant_id, A.day == day)
            .group_by(A.status)
            .having(n != 0)
        )
    }
    messages = await session.scalar(
        select(func.coalesce(func.sum(C.n), 0)).where(C.tenant_id == tenant_id, C.day == day)
    )
    return by_status, int(messages or 0)
