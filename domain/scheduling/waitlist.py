"""Waitlist backfill: a cancelled time is offered to waitlisted patients, wave by wave."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.scheduling.models import Appointment
from domain.scheduling.workflow_jobs import WorkflowGateway


async def backfill_after_cancellation(
    session: AsyncSession, gateway: WorkflowGateway, appointment: Appointment
) -> None:
    """After the commit, offer the cancelled appointment's time to matching waitlisted patients."""
    return None
