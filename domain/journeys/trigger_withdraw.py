"""Withdrawing events a sender took back (an HL7 A11 cancelling an admission, an A13 a discharge): what they
triggered is undone as far as it can be.

- Not dispatched yet: it is marked dispatched, so it never starts anything.
- A start it earned that is still pending (a delayed start): skipped, with the reason.
- A journey it started that is still running (waiting on its stages): cancelled through the API's cancel
  path (its workflow gets the cancellation after the commit); the start is skipped too, so a corrected
  event for the same record may start the journey again. A journey that already completed stays.

The event's row is locked first: a dispatcher working on it (`FOR UPDATE SKIP LOCKED`) is waited for, and one
that comes later finds it dispatched. Nothing here reads patient data: ids and statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import DomainEvent
from domain.enums import JourneyInstanceStatus, TriggerStartStatus
from domain.journeys.models import JourneyInstance, JourneyTriggerStart
from domain.journeys.service import cancel_instance


@dataclass
class Withdrawal:
    """What withdrawing events undid."""

    events: int = 0
    starts_withdrawn: int = 0  # pending (delayed) starts skipped
    journeys_cancelled: int = 0
    journeys_finished: int = 0  # started journeys already completed or failed: left as they are


async def withdraw_events(session: AsyncSession, events: list[DomainEvent], reason: str) -> Withdrawal:
    """Undo what `events` triggered (see the module's docstring); `reason` goes on the skipped starts."""
    done = Withdrawal()
    now = datetime.now(UTC)
    for event in events:
        locked = await session.scalar(
            select(DomainEvent)
            .where(DomainEvent.id == event.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if locked is None:
            continue
        done.events += 1
        if locked.dispatched_at is None:
            locked.dispatched_at = now
        starts = (
            await session.scalars(
                select(JourneyTriggerStart)
                .where(JourneyTriggerStart.event_id == locked.id)
                .order_by(JourneyTriggerStart.id)
                .with_for_update()
            )
        ).all()
        for start in starts:
            if start.status == TriggerStartStatus.PENDING.value:
                done.starts_withdrawn += 1
            elif start.status == TriggerStartStatus.STARTED.value and start.instance_id is not None:
                status = await session.scalar(
                    select(JourneyInstance.status).where(JourneyInstance.id == start.instance_id)
                )
                if status == JourneyInstanceStatus.ACTIVE.value:
                    await cancel_instance(session, start.instance_id)
                    done.journeys_cancelled += 1
                elif status != JourneyInstanceStatus.CANCELLED.value:
                    done.journeys_finished += 1
                    continue
            else:
                continue
            start.status = TriggerStartStatus.SKIPPED.value
            start.reason = reason[:200]
    await session.flush()
    return done
