"""The recurring campaigns' activity: launch the occurrence of one fire of a schedule.

One transaction in the campaign's tenant; idempotent under retry (and under a repeated fire) because the
occurrence is keyed by its definition and the fire's scheduled time, which the database holds unique. Its
workflow's start, recorded with it, is delivered after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity

from activities import ActivityDeps
from domain.campaigns import service
from domain.campaigns.plan import LaunchInput, LaunchResult


class CampaignScheduleActivities:
    """The recurring campaigns' activities, bound to the worker's database."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="campaign_launch_occurrence")
    async def launch_occurrence(self, data: LaunchInput) -> LaunchResult:
        """Launch (or find) the occurrence of this fire, unless the definition is paused or cancelled or
        its previous occurrence has not ended."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            return await service.launch_occurrence(
                session,
                uuid.UUID(data.definition_id),
                scheduled_for=datetime.fromisoformat(data.scheduled_for),
            )

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [self.launch_occurrence]
