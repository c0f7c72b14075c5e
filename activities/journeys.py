"""Journey activities: stage and instance bookkeeping, messages, tickets, appointment times.

Each takes one dataclass of ids, opens its own transaction scoped to the input's tenant (the worker's unit
of work, `ActivityDeps.unit_of_work`) and calls the journeys domain, which is idempotent under retry
(messages and tickets carry the key `journey:{instance}:{order_index}:{action_index}`, held unique by the
database) and reads what to send from
the instance's snapshot, so no message text ever passes through Temporal. A domain error (an invalid
snapshot, a patient who cannot be reached) fails for good as a non-retryable ApplicationError named by its
class (`InvalidJourneyAction`, ...); anything else is retried by the workflow's RetryPolicy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import NOT_BEGUN, ActivityDeps, NotBegun, deliver_recorded, heartbeats
from core import metrics
from core.database import after_commit
from domain.communications import delivery, dispatch
from domain.enums import JourneyInstanceStatus, StageStatus
from domain.journeys import actions
from domain.journeys import service as journeys
from domain.journeys.plan import (
    ActionInput,
    InstanceRef,
    InstanceStatusInput,
    ProgressInput,
    StageStatusInput,
)
from domain.journeys.repository import JourneyInstanceRepository


class JourneyActivities:
    """The journey workflow's activities, bound to the worker's dependencies: each opens its transaction,
    calls the journeys domain (`domain/journeys/actions.py`, the instance repository) and commits."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="journey_record_progress")
    async def record_progress(self, data: ProgressInput) -> None:
        """Record, in one transaction and in order, the stage statuses a journey noted since its last write
        and, when it ended, the instance's status (each ignored once the instance is no longer active)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            repository = JourneyInstanceRepository(session)
            for stage in data.stages:
                await _record_stage(repository, stage)
            if data.instance is not None:
                await _finish(session, repository, data.instance)

    @activity.defn(name="journey_record_stage_status")
    async def record_stage_status(self, data: StageStatusInput) -> None:
        """Record a stage's status and timestamps (ignored once the instance is cancelled or finished).
        Journeys started before the `batched-bookkeeping` patch record this way (`record_progress` since)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            await _record_stage(JourneyInstanceRepository(session), data)

    @activity.defn(name="journey_record_instance_status")
    async def record_instance_status(self, data: InstanceStatusInput) -> None:
        """Record that the instance completed or failed (ignored once it is no longer active). Journeys
        started before the `batched-bookkeeping` patch record this way (`record_progress` since)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            await _finish(session, JourneyInstanceRepository(session), data)

    @activity.defn(name="journey_mark_instance_cancelled")
    async def mark_instance_cancelled(self, data: InstanceStatusInput) -> None:
        """Record that the instance was cancelled (its unfinished stages become skipped)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            if await journeys.mark_cancelled(
                session, uuid.UUID(data.instance_id), datetime.fromisoformat(data.at)
            ):
                after_commit(
                    session, metrics.later(metrics.journey_finished, JourneyInstanceStatus.CANCELLED.value)
                )

    @activity.defn(name="journey_load_appointment_time")
    async def load_appointment_time(self, data: InstanceRef) -> str | None:
        """The start time (ISO 8601) of the instance's appointment; None without one or once cancelled."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            start = await actions.appointment_time(session, uuid.UUID(data.instance_id))
        return start.isoformat() if start is not None else None

    @activity.defn(name="journey_send_message")
    @heartbeats
    async def send_journey_message(self, data: ActionInput) -> str | None:
        """Render and record a stage's message once, then deliver it; the communication's id (None once the
        journey stopped).

        A message the send policy lets go now, not scheduled for later and with no fallback to watch, is
        handed to its provider right here: the gate's decision and the send attempt commit with the new
        message (`delivery.begin_at_once`), then the provider's answer (`finish_at_once`); any other (a wait
        for quiet hours or the cap, a WhatsApp fallback to watch, a provider that failed for now) gets its
        delivery workflow, whose start was recorded, held, with the message (`dispatch.hold_starts`) and is
        released here.
        Either way the same gate and the same at-most-once send apply. A retry after a crash finds the
        message under its key and carries on from where it is; a worker lost for good leaves the held
        start to the relay."""
        # The workflow's time on a first attempt (a time-skipped test's clock too); a retry's is now.
        first = data.at is not None and activity.info().attempt == 1
        now = datetime.fromisoformat(data.at) if first and data.at else datetime.now(UTC)
        begun: delivery.Step | NotBegun = NOT_BEGUN
        async with self.deps.unit_of_work(data.tenant_id) as session:
            dispatch.hold_starts(session)
            sent = await actions.send_stage_message(
                session, uuid.UUID(data.instance_id), data.order_index, data.action_index
            )
            if sent is not None and sent.created:  # the gate and the attempt commit with the new message
                begun = await delivery.begin_at_once(
                    session, sent.communication, now=now, settings=self.deps.settings, held=True
                )
        if sent is None:
            return None
        await deliver_recorded(self.deps, data.tenant_id, sent.communication.id, now, begun=begun)
        return str(sent.communication.id)

    @activity.defn(name="journey_create_ticket")
    @heartbeats
    async def create_journey_ticket(self, data: ActionInput) -> str:
        """Create a stage's ticket once (a create_ticket action, or a wait_for_reply action's timeout)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            ticket_id = await actions.create_stage_ticket(
                session, uuid.UUID(data.instance_id), data.order_index, data.action_index
            )
        return str(ticket_id)

    @activity.defn(name="journey_create_timeout_ticket")
    @heartbeats
    async def create_timeout_ticket(self, data: ActionInput) -> str:
        """Create, once, the ticket of a `reply_received` stage whose patient did not reply in time."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            ticket_id = await actions.create_timeout_ticket(
                session, uuid.UUID(data.instance_id), data.order_index
            )
        return str(ticket_id)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [
            self.record_progress,
            self.record_stage_status,
            self.record_instance_status,
            self.mark_instance_cancelled,
            self.load_appointment_time,
            self.send_journey_message,
            self.create_journey_ticket,
            self.create_timeout_ticket,
        ]


async def _record_stage(repository: JourneyInstanceRepository, data: StageStatusInput) -> None:
    recorded = await repository.record_stage(
        uuid.UUID(data.instance_id),
        data.order_index,
        StageStatus(data.status).value,
        datetime.fromisoformat(data.at),
        data.notes,
    )
    if recorded is None:
        raise actions.InvalidJourneyAction(f"the instance has no stage {data.order_index}")


async def _finish(
    session: AsyncSession, repository: JourneyInstanceRepository, data: InstanceStatusInput
) -> None:
    finished = await repository.finish(
        uuid.UUID(data.instance_id), JourneyInstanceStatus(data.status), datetime.fromisoformat(data.at)
    )
    if finished:  # once, whatever the retries
        after_commit(session, metrics.later(metrics.journey_finished, data.status))
