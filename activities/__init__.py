"""Temporal activities: the side effects workflows ask for, each idempotent under retry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
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
        return session


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
