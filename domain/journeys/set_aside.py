"""Events the trigger dispatcher set aside, for operators: list them and, the cause fixed, retry one.

The dispatcher sets an event aside after `MAX_ATTEMPTS` failed attempts (a bug, not an outage: a Temporal
outage fails nothing here, as the journey's start is a command the relay delivers later): it is marked
dispatched with its error's class (`dispatch_error`), logged at ERROR with its id and counted
(`prm_domain_events_set_aside`).
A retry puts it back in the queue with its attempts reset; a start it already earned is never repeated
(one per journey, patient and event). Nothing here reads patient data: ids, types and error classes.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import DomainEvent

MAX_ATTEMPTS = 5  # an event that fails this often is set aside


def is_set_aside() -> ColumnElement[bool]:
    """The events the dispatcher gave up on: done, with an error (a success clears the error)."""
    return DomainEvent.dispatched_at.is_not(None) & DomainEvent.dispatch_error.is_not(None)


async def set_aside_events(
    session: AsyncSession, *, tenant_id: uuid.UUID | None = None, limit: int = 100
) -> list[DomainEvent]:
    """The set-aside events (of one tenant, or every tenant the session sees), oldest first."""
    stmt = select(DomainEvent).where(is_set_aside())
    if tenant_id is not None:
        stmt = stmt.where(DomainEvent.tenant_id == tenant_id)
    return list((await session.scalars(stmt.order_by(DomainEvent.id).limit(limit))).all())


class NotSetAside(Exception):
    """The event exists but is not set aside (dispatched, or still waiting for the dispatcher)."""


async def retry_event(session: AsyncSession, event_id: int) -> DomainEvent | None:
    """Put a set-aside event back in the dispatcher's queue with its attempts reset (the caller commits);
    None when there is no such event, `NotSetAside` when it is not set aside."""
    event = await session.scalar(select(DomainEvent).where(DomainEvent.id == event_id).with_for_update())
    if event is None:
        return None
    retried = await session.scalar(
        update(DomainEvent)
        .where(DomainEvent.id == event_id, is_set_aside())
        .values(dispatched_at=None, dispatch_attempts=0)
        .returning(DomainEvent.id)
        .execution_options(synchronize_session=False)
    )
    if retried is None:
        raise NotSetAside(event_id)
    await session.refresh(event)
    return event
