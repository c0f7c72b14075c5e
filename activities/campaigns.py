"""Campaign activities: read the plan, enrol a batch of members, end the campaign.

Each takes one dataclass of ids (never PHI) and is one transaction in the campaign's tenant; a batch is
idempotent under retry because its members' states and their journey instances (unique per member by
their idempotency key) commit together or not at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities import ActivityDeps, deliver_recorded, heartbeats
from domain.campaigns import steps
from domain.campaigns.plan import BatchResult, CampaignInput, CampaignPlan, EnrollInput, FinishInput
from domain.communications import dispatch

# How long a campaign message waits in its batch for its sender's turn (other campaigns sharing the sender,
# interactive messages going first); a longer wait hands it to its delivery workflow, which waits durably.
TURN_PATIENCE = 120.0


class CampaignActivities:
    """The campaign activities, bound to the worker's database."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="campaign_plan")
    async def plan(self, data: CampaignInput) -> CampaignPlan:
        """The campaign's status, start time and pace as stored."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            return await steps.plan_of(session, uuid.UUID(data.campaign_id))

    @activity.defn(name="campaign_enroll_batch")
    @heartbeats
    async def enroll_batch(self, data: EnrollInput) -> BatchResult:
        """Reach the next members (freezing the cohort first, once): their journeys start after the commit;
        their messages are handed to the providers here, one after the other, with no workflow each
        unless one must wait (`deliver_recorded`)."""
        now = datetime.now(UTC)
        async with self.deps.unit_of_work(data.tenant_id) as session:
            dispatch.hold_starts(session)
            result, sending = await steps.enroll_batch(
                session, uuid.UUID(data.campaign_id), now=now, limit=data.limit, settings=self.deps.settings
            )
        await self._send(data.tenant_id, sending, now)
        return result

    async def _send(self, tenant_id: str, sending: steps.Sending, now: datetime) -> None:
        """Hand the batch's messages to their providers, `in_flight` at a time, each at its sender's turn
        (a batch is at most a minute of them). Every message's delivery runs to its end even when another
        fails, so none is abandoned mid-send; then the first failure, if any, fails the activity (its retry
        finds the sent ones sent)."""
        slots = asyncio.Semaphore(sending.in_flight)

        async def one(communication_id: uuid.UUID) -> None:
            async with slots:
                await deliver_recorded(self.deps, tenant_id, communication_id, now, patience=TURN_PATIENCE)

        outcomes = await asyncio.gather(*(one(i) for i in sending.ids), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    @activity.defn(name="campaign_finish")
    async def finish(self, data: FinishInput) -> str:
        """Mark the campaign completed (or failed) unless it already ended; its final status."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            return await steps.finish(
                session, uuid.UUID(data.campaign_id), now=datetime.now(UTC), failure=data.failure
            )

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [self.plan, self.enroll_batch, self.finish]
