"""One workflow per campaign (`campaign-<id>`): waits for the start time, then enrols the members batch by
batch (an activity each, one transaction each) at the campaign's pace and inside its daily window, until
none is pending; a pause holds it, a cancel ends it.

The stored status is the truth: every batch reads it under the campaign's row lock and the workflow adopts
it, so a `campaign_changed` signal lost in transit is corrected at the next batch; the signal only makes
the workflow react at once (wake from a wait, stop before the next batch). It continues as new every
`BATCHES_PER_RUN` batches, so its history stays small whatever the cohort's size. Deterministic: time is
`workflow.now()`; the window's calendar arithmetic happens in the batch activity.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.campaigns import CampaignActivities
    from domain.campaigns.plan import (
        BATCH_SIZE,
        BATCHES_PER_RUN,
        FINAL_STATUSES,
        SIGNAL_CHANGED,
        WORKFLOW_NAME,
        BatchResult,
        CampaignChanged,
        CampaignInput,
        CampaignStatus,
        EnrollInput,
        FinishInput,
    )

STEP_TIMEOUT = timedelta(minutes=5)  # a first batch freezes the cohort: 100,000 rows in one INSERT
HEARTBEAT = timedelta(seconds=10)  # a killed worker's batch is retried within seconds, not minutes
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=WORKFLOW_NAME)
class CampaignWorkflow:
    """A campaign from its start time to its last member."""

    def __init__(self) -> None:
        self._status = CampaignStatus.SCHEDULED.value
        self._changes = 0

    @workflow.signal(name=SIGNAL_CHANGED)
    def changed(self, change: CampaignChanged) -> None:
        """The campaign was paused, resumed or cancelled."""
        self._status = change.status
        self._changes += 1

    @workflow.run
    async def run(self, data: CampaignInput) -> str:
        """Enrol every member, or stop when cancelled; the campaign's final status."""
        seen = self._changes
        plan = await workflow.execute_activity_method(
            CampaignActivities.plan, data, start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY
        )
        self._adopt(plan.status, seen)
        if plan.starts_at is not None:
            await self._wait(datetime.fromisoformat(plan.starts_at) - workflow.now(), self._ended)
        pace = plan.pace_per_minute
        limit = min(BATCH_SIZE, pace) if pace else BATCH_SIZE
        batches = 0
        while self._status not in FINAL_STATUSES:
            if self._status == CampaignStatus.PAUSED.value:
                await workflow.wait_condition(lambda: self._status != CampaignStatus.PAUSED.value)
                continue
            if batches >= BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(data)
            seen = self._changes
            try:
                result = await self._batch(data, limit)
            except ActivityError as exc:
                return await self._finish(data, failure=_failure_type(exc))
            batches += 1
            self._adopt(result.status, seen)
            if result.status != CampaignStatus.RUNNING.value:
                continue
            if result.wait_seconds > 0:  # outside the send window
                await self._wait(timedelta(seconds=result.wait_seconds), self._changed_since(seen))
            elif result.remaining == 0:
                break
            elif pace and result.processed:
                await self._wait(timedelta(minutes=result.processed / pace), self._changed_since(seen))
        return await self._finish(data)

    async def _batch(self, data: CampaignInput, limit: int) -> BatchResult:
        return await workflow.execute_activity_method(
            CampaignActivities.enroll_batch,
            EnrollInput(tenant_id=data.tenant_id, campaign_id=data.campaign_id, limit=limit),
            start_to_close_timeout=STEP_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )

    async def _finish(self, data: CampaignInput, failure: str | None = None) -> str:
        return await workflow.execute_activity_method(
            CampaignActivities.finish,
            FinishInput(tenant_id=data.tenant_id, campaign_id=data.campaign_id, failure=failure),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    async def _wait(self, duration: timedelta, until: Callable[[], bool]) -> None:
        """Sleep `duration` (a durable timer), or less if `until` turns true first."""
        if duration <= timedelta(0):
            return
        try:
            await workflow.wait_condition(until, timeout=duration)
        except TimeoutError:
            pass

    def _ended(self) -> bool:
        return self._status in FINAL_STATUSES

    def _changed_since(self, seen: int) -> Callable[[], bool]:
        """A condition that turns true once a signal arrives after the `seen`-th."""
        return lambda: self._changes != seen

    def _adopt(self, status: str, seen: int) -> None:
        """Take the stored status, unless a newer signal came in while it was read."""
        if self._changes == seen:
            self._status = status


def _failure_type(exc: ActivityError) -> str:
    """What a batch's final failure was: a domain error's class and readable detail (ids and states, never
    PHI, by the domain errors' contract), e.g. `Conflict: This journey is inactive; ...`."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'Error'}: {cause.message}"
    return type(cause).__name__
