"""The analytics figures computed the obvious way, in Python over every row of a tenant: the oracle the
rollup-based answers are checked against."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.analytics.models import MessageSentiment
from domain.analytics.sentiment import ANALYZER
from domain.communications.models import Communication
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant


@dataclass
class Window:
    """Local dates first..last of a zone, and the instants [start, end) they cover."""

    first: date
    last: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, period: dict[str, Any], zone: ZoneInfo) -> Window:
        """The window a response's `period` names."""
        first, last = date.fromisoformat(period["start_date"]), date.fromisoformat(period["end_date"])
        start = datetime.combine(first, time(0), tzinfo=zone)
        return cls(first, last, start, datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone))

    def holds(self, instant: datetime) -> bool:
        """Whether `instant` falls in the window."""
        return self.start <= instant < self.end


@dataclass
class TenantRows:
    """Everything of one tenant the figures are made of."""

    zone: ZoneInfo
    appointments: list[Any]
    messages: list[Any]
    scores: dict[uuid.UUID, tuple[float, str]]


async def read_tenant(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> TenantRows:
    """Every appointment, message and score of the tenant, and its time zone."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        A, C, M = Appointment, Communication, MessageSentiment
        appointments = (
            await session.execute(select(A.start_time, A.status, A.source_channel, A.practitioner_id))
        ).all()
        messages = (
            await session.execute(
                select(C.id, C.patient_id, C.direction, C.channel, C.status, C.created_at, C.sent_at)
            )
        ).all()
        scores = {
            r.communication_id: (r.compound, r.label)
            for r in await session.execute(select(M.communication_id, M.compound, M.label))
        }
    return TenantRows(ZoneInfo(tenant.timezone), list(appointments), list(messages), dict(scores))


def appointment_figures(rows: TenantRows, window: Window) -> dict[str, Any]:
    """Appointments starting in the window: by status, local day, channel and practitioner."""
    inside = [a for a in rows.appointments if window.holds(a.start_time)]
    by_day = Counter(a.start_time.astimezone(rows.zone).date().isoformat() for a in inside)
    return {
        "total": len(inside),
        "by_status": dict(Counter(a.status for a in inside)),
        "by_day": dict(by_day),
        "by_channel": dict(Counter(a.source_channel or "unknown" for a in inside)),
        "by_practitioner": dict(Counter(str(a.practitioner_id) for a in inside)),
    }


def replies(rows: TenantRows) -> list[tuple[datetime, float]]:
    """(received at, response seconds) of every reply: an inbound message whose predecessor in the
    patient's conversation (created_at, inbound before outbound at one instant, id) is outbound."""
    by_patient: dict[uuid.UUID, list[Any]] = {}
    for m in rows.messages:
        if m.patient_id is not None:
            by_patient.setdefault(m.patient_id, []).append(m)
    found = []
    for conversation in by_patient.values():
        conversation.sort(key=lambda m: (m.created_at, m.direction == "outbound", m.id))
        for before, m in pairwise(conversation):
            if m.direction == "inbound" and before.direction == "outbound":
                sent = before.sent_at or before.created_at
                found.append((m.created_at, (m.created_at - sent).total_seconds()))
    return found


def median(values: list[float]) -> float | None:
    """percentile_cont(0.5), rounded as the API rounds."""
    if not values:
        return None
    ordered = sorted(values)
    low, high = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
    return round(low + (high - low) * 0.5, 1)


def communication_figures(rows: TenantRows, window: Window) -> dict[str, Any]:
    """Messages created in the window: volumes, replies and their median, sentiment."""
    inside = [m for m in rows.messages if window.holds(m.created_at)]
    inbound = [m for m in inside if m.direction == "inbound"]
    scored = [rows.scores[m.id] for m in inbound if m.id in rows.scores]
    seconds = [s for at, s in replies(rows) if window.holds(at)]
    labels = Counter(label for _, label in scored)
    return {
        "total": len(inside),
        "inbound": len(inbound),
        "outbound": len(inside) - len(inbound),
        "by_channel": dict(Counter(m.channel for m in inside)),
        "by_status": dict(Counter(m.status for m in inside)),
        "replies": len(seconds),
        "median_response_seconds": median(seconds),
        "sentiment": {
            "analyzer": ANALYZER,
            "scored": len(scored),
            "unscored": len(inbound) - len(scored),
            "average_compound": _average(c for c, _ in scored) if scored else None,
            "positive": labels["positive"],
            "neutral": labels["neutral"],
            "negative": labels["negative"],
        },
    }


def _average(compounds: Iterable[float]) -> float:
    """The mean as the rollup computes it: each score cast to numeric the way PostgreSQL casts a double (15
    significant digits), summed exactly, divided, rounded to 4 places. A float sum can land on the other side
    of a rounding boundary (-0.05185 read as -0.0518 instead of -0.0519)."""
    values = [Decimal(format(c, ".15g")) for c in compounds]
    return round(float(sum(values, Decimal(0)) / len(values)), 4)
