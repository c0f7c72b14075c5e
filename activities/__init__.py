"""Temporal activities: the side effects workflows ask for, each idempotent under retry."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from core.database import bind_tenant
from core.errors import DomainError
from core.events import EventSource, set_event_source
from core.settings import Settings


@dataclass
class ActivityDeps:
    """What activities need from the process that hosts them (built once by worker.py)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    def tenant_session(self, tenant_id: str) -> AsyncSession:
        """A session scoped to one tenant: how every activity opens its transaction (`async with`)."""
        session = self.sessionmaker()
        bind_tenant(session, uuid.UUID(tenant_id))
        set_event_source(session, EventSource.WORKER)  # a booking by chat or from the waitlist
        return session


@contextmanager
def domain_errors_are_final() -> Iterator[None]:
    """A domain error (a patient who cannot be reached, an invalid snapshot, a state the request no longer
    fits) fails the activity for good, named by its class, with its readable detail: a retry would meet
    the same data. Database and provider outages are not domain errors, and the workflow's retry policy
    retries them."""
    try:
        yield
    except DomainError as exc:
        raise ApplicationError(exc.detail, type=type(exc).__name__, non_retryable=True) from exc


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to `deps` (each domain adds its group here)."""
    from activities.appointments import AppointmentActivities  # imported here: it needs ActivityDeps
    from activities.communications import CommunicationActivities
    from activities.journeys import JourneyActivities
    from activities.reconcile import ReconcileActivities
    from activities.tickets import TicketActivities

    return [
        *AppointmentActivities(deps).all(),
        *JourneyActivities(deps).all(),
        *ReconcileActivities(deps).all(),
        *TicketActivities(deps).all(),
        *CommunicationActivities(deps).all(),
    ]
