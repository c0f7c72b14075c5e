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
from domain.campaigns.plan import (
    BatchResult,
    CampaignInput,
    CampaignPlan,
    CampaignStatus,
    EnrollInput,
    FinishInput,
)
from domain.communications import dispatch

# How long a campaign message waits in its batch for its sender's turn (other campaigns sharing the sender,
# interactive messages going first); a longer wait hands it to its delivery workflow, which waits durably.
TURN_PATIENCE = 120.0
CHUNK = 20  # messages recorded per transaction: the next chunk is recorded while this one's messages go


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
        """Reach the next members (freezing the cohort first, once): a journey campaign's batch in one
        transaction (one INSERT), their workflows started after the commit, side by side; a message
        campaign's `CHUNK` per transaction, its messages handed to the providers here, each at its sender's
        turn and with no workflow unless one must wait (`deliver_recorded`), while the next chunk is
        recorded. A batch of messages holds at most a minute of its sender's throughput
        (`steps.batch_for_sender`)."""
        now = datetime.now(UTC)
        campaign_id, limit, reached = uuid.UUID(data.campaign_id), data.limit, 0
        sends: list[asyncio.Task[None]] = []
        slots: asyncio.Semaphore | None = None
        try:
            while True:
                async with self.deps.unit_of_work(data.tenant_id) as session:
                    dispatch.hold_starts(session)
                    result, sending = await steps.enroll_batch(
                        session,
                        campaign_id,
                        now=now,
                        limit=limit - reached,
                        settings=self.deps.settings,
                        message_chunk=CHUNK,
                    )
                limit, reached = min(limit, sending.batch_limit), reached + result.processed
                slots = slots or asyncio.Semaphore(sending.in_flight)
                sends += [asyncio.create_task(self._send(data.tenant_id, i, now, slots)) for i in sending.ids]
                done = result.status != CampaignStatus.RUNNING or result.wait_seconds > 0
                if done or result.remaining == 0 or result.processed == 0 or reached >= limit:
                    break
        finally:  # every message recorded goes to its provider (or its workflow), whatever happened since
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for outcome in outcomes:  # then the first failure, if any, fails the activity (its retry finds the
            if isinstance(outcome, BaseException):  # sent ones sent)
                raise outcome
        return BatchResult(result.status, reached, result.remaining, result.wait_seconds)

    async def _send(
        self, tenant_id: str, communication_id: uuid.UUID, now: datetime, slots: asyncio.Semaphore
    ) -> None:
        """Hand one recorded message to its provider at its sender's turn, `slots` of them at once."""
        async with slots:
            await deliver_recorded(self.deps, tenant_id, communication_id, now, patience=TURN_PATIENCE)

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
