# Kept whole at ~450 lines: nearly all of it is one workflow class whose methods share its state
# (position, claims, reminders) and its replay rules (patches); split across modules it would read
# as mixins over hidden state.
"""One workflow per journey instance: runs its stages in order, waiting durably on each stage's trigger.

Triggers: `immediate`; `delay` (a durable timer from the previous stage's completion); `before_appointment`
/ `after_appointment` (a timer against the appointment time an activity reads, re-read when it fires so a
postponed appointment moves the stage); `reply_received` (the `reply_received` signal, with a timeout and
a fallback); `manual` (the stage's actions run, then it waits for the `advance` Update). An advance is
refused, by its validator and again by its handler before the handler's first await, unless the current
stage is a manual one waiting to be advanced, not yet claimed by another advance, and the one the request
names (when it names one): of any number of concurrent advances of one stage exactly one succeeds.

A failed action (an activity that fails for good, e.g. a patient with no phone for a WhatsApp message)
marks its stage `failed` with the reason and the instance `failed`: later stages would act on a journey the
clinic thinks is progressing, so the journey stops and shows up as failed for a coordinator to look at.

The input is a PHI-free plan (ids, kinds, durations); activities read message text and ticket details from
the instance's `definition_snapshot`. Deterministic: time is `workflow.now()`, all I/O is in activities.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.journeys import JourneyActivities
    from core.temporal import SA_INSTANCE_STATUS
    from domain.journeys.plan import (
        WORKFLOW_NAME,
        ActionInput,
        ActionPlan,
        AdvanceInput,
        AdvanceResult,
        InstanceRef,
        InstanceStatusInput,
        JourneyWorkflowInput,
        PendingReminder,
        ProgressInput,
        ReplyReceived,
        StagePlan,
        StageStatusInput,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A stage's actions (send a message: render, record, perhaps a provider call of at most 10 s; create a
# ticket) heartbeat, so a worker that died mid-action is noticed after ACTION_HEARTBEAT and the action is
# retried within seconds rather than after ACTIVITY_TIMEOUT. (Changing these options does not break replay.)
ACTION_HEARTBEAT = timedelta(seconds=5)
LOCAL_BOOKKEEPING_PATCH = "local-bookkeeping"
# Executions started after this patch note their stage and instance statuses and write them together, in
# one local activity per stage transition (the previous stage's end and this one's start; the last stage's
# end and the instance's): half the bookkeeping transactions. Executions started before it write each
# status as it happens, as their histories say.
BATCHED_BOOKKEEPING_PATCH = "batched-bookkeeping"
ADVANCE_CLAIMS_STAGE_PATCH = "advance-claims-stage"
ADVANCE_REFUSED = "AdvanceRefused"  # the ApplicationError type of every refused advance
# Transient failures (database or provider hiccups) retry with backoff until they succeed; invalid input
# raises a non-retryable ApplicationError and fails the stage at once.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)


class _StageFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    return getattr(cause, "message", None) or str(cause or exc)


def _human(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'s' if n != 1 else ''}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"), (secs, "second"))
        if n
    ]
    return " ".join(parts) or "0 seconds"


@workflow.defn(name=WORKFLOW_NAME)
class JourneyInstanceWorkflow:
    """Drives one patient's journey through its stages."""

    def __init__(self) -> None:
        self._data: JourneyWorkflowInput | None = None
        self._position = 0
        self._active_position = -1  # the stage last recorded as active
        self._awaiting_advance = False
        self._advanced = False
        self._reply_pending = False
        self._finished = False
        self._batched = False  # BATCHED_BOOKKEEPING_PATCH
        self._noted: list[StageStatusInput] = []  # statuses noted, not yet written (batched executions)
        self._reminders: dict[tuple[int, int], tuple[asyncio.Task[None], str]] = {}

    # ---- the run ----------------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: JourneyWorkflowInput) -> str:
        """Run the stages from `data.position` to the end; the instance's final status."""
        self._batched = workflow.patched(BATCHED_BOOKKEEPING_PATCH)
        self._data = data
        self._position = data.position
        self._reply_pending = data.reply_pending
        anchor = datetime.fromisoformat(data.anchor_time) if data.anchor_time else workflow.now()
        for reminder in data.pending_reminders:
            self._schedule_reminder(
                reminder.order_index, reminder.action_index, datetime.fromisoformat(reminder.due_at)
            )
        try:
            while self._position < len(data.stages):
                ran = self._position - data.position
                if (
                    ran > 0
                    and (
                        workflow.info().is_continue_as_new_suggested()
                        or (data.stages_per_run is not None and ran >= data.stages_per_run)
                    )
                    and workflow.all_handlers_finished()
                ):
                    await self._write_progress()  # the previous stage's end goes with this run
                    if workflow.all_handlers_finished():
                        self._continue_as_new(anchor)
                stage = data.stages[self._position]
                try:
                    await self._run_stage(stage, anchor)
                except _StageFailed as failed:
                    await self._record_stage(stage.order_index, "failed", failed.reason)
                    await self._cancel_reminders()
                    await self._set_instance_status("failed", failed.reason)
                    self._finished = True
                    return "failed"
                anchor = workflow.now()
                self._position += 1
            if self._reminders:
                await self._write_progress()  # the last stage's end, before waiting on its reminders
                await asyncio.gather(*(task for task, _ in list(self._reminders.values())))
            await self._set_instance_status("completed")
            self._finished = True
            await workflow.wait_condition(workflow.all_handlers_finished)
            return "completed"
        except asyncio.CancelledError:
            self._finished = True
            await self._cancel_reminders()
            await self._write_progress()  # what was noted before the cancel, then the cancel itself
            await workflow.execute_activity_method(
                JourneyActivities.mark_instance_cancelled,
                InstanceStatusInput(
                    data.tenant_id, data.instance_id, "cancelled", workflow.now().isoformat()
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            workflow.upsert_search_attributes([SA_INSTANCE_STATUS.value_set("cancelled")])
            raise

    def _continue_as_new(self, anchor: datetime) -> None:
        assert self._data is not None
        pending = [PendingReminder(o, a, due) for (o, a), (_, due) in sorted(self._reminders.items())]
        for task, _ in self._reminders.values():
            task.cancel()
        workflow.continue_as_new(
            JourneyWorkflowInput(
                tenant_id=self._data.tenant_id,
                instance_id=self._data.instance_id,
                patient_id=self._data.patient_id,
                journey_id=self._data.journey_id,
                stages=self._data.stages,
                position=self._position,
                anchor_time=anchor.isoformat(),
                reply_pending=self._reply_pending,
                pending_reminders=pending,
                stages_per_run=self._data.stages_per_run,
            )
        )

    async def _run_stage(self, stage: StagePlan, anchor: datetime) -> None:
        await self._record_stage(stage.order_index, "active", None)
        await self._write_progress()  # with the previous stage's end; written before an advance returns
        self._active_position = self._position
        notes: str | None = None
        if stage.trigger == "delay":
            await self._sleep_until(anchor + timedelta(seconds=stage.seconds))
        elif stage.trigger in ("before_appointment", "after_appointment"):
            sign = -1 if stage.trigger == "before_appointment" else 1
            if not await self._wait_for_appointment_offset(sign * stage.seconds):
                await self._record_stage(
                    stage.order_index, "skipped", "Skipped: the instance has no appointment."
                )
                return
        elif stage.trigger == "reply_received":
            if not await self._wait_for_reply(stage.seconds):
                waited = f"No reply within {_human(stage.seconds)}"
                if stage.on_timeout == "skip":
                    await self._record_stage(stage.order_index, "skipped", f"{waited}: stage skipped.")
                    return
                if stage.on_timeout == "create_ticket":
                    await self._act(JourneyActivities.create_timeout_ticket, stage.order_index, -1)
                    await self._record_stage(
                        stage.order_index, "skipped", f"{waited}: follow-up ticket created."
                    )
                    return
                notes = f"{waited}: continued."
        ended_early = await self._run_actions(stage)
        notes = ended_early or notes
        if stage.trigger == "manual":
            self._advanced = False
            self._awaiting_advance = True
            await workflow.wait_condition(lambda: self._advanced)
            self._awaiting_advance = False
        await self._record_stage(stage.order_index, "completed", notes)

    async def _run_actions(self, stage: StagePlan) -> str | None:
        """Perform the stage's actions in order; a note when a wait ended the stage early."""
        for action in stage.actions:
            if action.kind == "send_message":
                await self._act(JourneyActivities.send_journey_message, stage.order_index, action.index)
                self._reply_pending = False  # a reply now answers this message
            elif action.kind == "create_ticket":
                await self._act(JourneyActivities.create_journey_ticket, stage.order_index, action.index)
            elif action.kind == "schedule_reminder":
                await self._plan_reminder(stage, action)
            elif action.kind == "wait_for_reply":
                if not await self._wait_for_reply(action.seconds):
                    waited = f"No reply within {_human(action.seconds)}"
                    if action.on_timeout == "create_ticket":
                        await self._act(
                            JourneyActivities.create_journey_ticket, stage.order_index, action.index
                        )
                        return f"{waited}: follow-up ticket created."
                    if action.on_timeout == "skip":
                        return f"{waited}: remaining actions skipped."
        return None

    # ---- waiting ----------------------------------------------------------------------------------

    async def _sleep_until(self, due: datetime) -> None:
        remaining = due - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)

    async def _appointment_time(self) -> datetime | None:
        assert self._data is not None
        iso = await workflow.execute_activity_method(
            JourneyActivities.load_appointment_time,
            InstanceRef(self._data.tenant_id, self._data.instance_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        return datetime.fromisoformat(iso) if iso else None

    async def _wait_for_appointment_offset(self, offset_seconds: int) -> bool:
        """Sleep until the appointment time plus the offset (re-read on waking); False without appointment."""
        while True:
            start = await self._appointment_time()
            if start is None:
                return False
            due = start + timedelta(seconds=offset_seconds)
            if due <= workflow.now():
                return True
            await self._sleep_until(due)

    async def _wait_for_reply(self, timeout_seconds: int) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self._reply_pending, timeout=timedelta(seconds=timeout_seconds)
            )
        except TimeoutError:
            return False
        self._reply_pending = False
        return True

    # ---- reminders --------------------------------------------------------------------------------

    async def _plan_reminder(self, stage: StagePlan, action: ActionPlan) -> None:
        start = await self._appointment_time()
        if start is None:
            return
        self._schedule_reminder(stage.order_index, action.index, start - timedelta(seconds=action.seconds))

    def _schedule_reminder(self, order_index: int, action_index: int, due: datetime) -> None:
        async def send_when_due() -> None:
            await self._sleep_until(due)
            try:
                await self._act(JourneyActivities.send_journey_message, order_index, action_index)
            except _StageFailed as failed:  # the journey itself goes on; the reason is in the worker log
                workflow.logger.warning(
                    "reminder %s/%s not sent: %s", order_index, action_index, failed.reason
                )
            self._reminders.pop((order_index, action_index), None)

        task = asyncio.create_task(send_when_due())
        self._reminders[(order_index, action_index)] = (task, due.isoformat())

    async def _cancel_reminders(self) -> None:
        for task, _ in self._reminders.values():
            task.cancel()
        self._reminders.clear()

    # ---- activities -------------------------------------------------------------------------------

    async def _act(self, method: object, order_index: int, action_index: int) -> None:
        assert self._data is not None
        try:
            await workflow.execute_activity_method(
                method,  # type: ignore[arg-type]
                ActionInput(
                    self._data.tenant_id,
                    self._data.instance_id,
                    order_index,
                    action_index,
                    workflow.now().isoformat(),
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=ACTION_HEARTBEAT,
                retry_policy=RETRY,
            )
        except ActivityError as exc:
            raise _StageFailed(_reason(exc)) from exc

    async def _record_stage(self, order_index: int, status: str, notes: str | None) -> None:
        """Record a stage's status at the workflow's time now: noted, to be written with the next
        `_write_progress` (batched executions), or written at once."""
        assert self._data is not None
        status_input = StageStatusInput(
            self._data.tenant_id,
            self._data.instance_id,
            order_index,
            status,
            workflow.now().isoformat(),
            notes,
        )
        if self._batched:
            self._noted.append(status_input)
        else:
            await self._bookkeeping(JourneyActivities.record_stage_status, status_input)

    async def _write_progress(self, instance: InstanceStatusInput | None = None) -> None:
        """Write the statuses noted so far (and the instance's, when given) in one local activity; nothing
        for executions that write each status as it happens, or when nothing is noted."""
        assert self._data is not None
        if not self._batched or (not self._noted and instance is None):
            return
        noted, self._noted = self._noted, []
        try:
            await workflow.execute_local_activity_method(
                JourneyActivities.record_progress,
                ProgressInput(self._data.tenant_id, self._data.instance_id, noted, instance),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
        except BaseException:
            self._noted[:0] = noted  # not written: kept for the next write (a cancel's, say)
            raise

    async def _bookkeeping(self, method: Any, arg: Any) -> None:
        """Record progress in the database: a short, idempotent write.

        Runs as a local activity (no round trip through the task queue) in executions started after the
        `local-bookkeeping` patch; executions that recorded it as a regular activity replay as such."""
        if workflow.patched(LOCAL_BOOKKEEPING_PATCH):
            await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
            )
        else:
            await workflow.execute_activity_method(
                method, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
            )

    async def _set_instance_status(self, status: str, notes: str | None = None) -> None:
        assert self._data is not None
        status_input = InstanceStatusInput(
            self._data.tenant_id, self._data.instance_id, status, workflow.now().isoformat(), notes
        )
        if self._batched:
            await self._write_progress(status_input)  # with the last stage's end
        else:
            await self._bookkeeping(JourneyActivities.record_instance_status, status_input)
        workflow.upsert_search_attributes([SA_INSTANCE_STATUS.value_set(status)])

    # ---- messages from outside --------------------------------------------------------------------

    @workflow.signal(name="reply_received")
    def reply_received(self, _reply: ReplyReceived) -> None:
        """The patient replied (an inbound message linked to this instance)."""
        self._reply_pending = True

    @workflow.update(name="advance")
    async def advance(self, request: AdvanceInput) -> AdvanceResult:
        """Complete the manual stage waiting now (the one `request` names, if it names one); returns once
        the journey has moved on."""
        assert self._data is not None
        if workflow.patched(ADVANCE_CLAIMS_STAGE_PATCH):
            # The handler, not only the validator, checks and claims the stage before its first await:
            # Updates accepted in one activation may all have passed the validator before any handler ran,
            # so the first handler's claim is what the others must see. Executions that advanced before
            # this patch replay without the check (their duplicates were accepted then).
            self._refuse_advance(request)
        position = self._position
        order_index = self._data.stages[position].order_index
        self._advanced = True
        await workflow.wait_condition(lambda: self._finished or self._active_position > position)
        status = "completed" if self._position >= len(self._data.stages) else "active"
        return AdvanceResult(order_index=order_index, instance_status=status)

    @advance.validator
    def validate_advance(self, request: AdvanceInput) -> None:
        """Refuse to advance a journey that is finished, a stage other than the one `request` names, or a
        stage that is not a manual one waiting (and not yet claimed by another advance)."""
        self._refuse_advance(request)

    def _refuse_advance(self, request: AdvanceInput) -> None:
        """Raise ApplicationError (details: the current stage's order_index, or none) unless `request` may
        advance the current stage now."""
        assert self._data is not None
        if self._finished or self._position >= len(self._data.stages):
            raise ApplicationError("The journey instance has no stage left to advance.", type=ADVANCE_REFUSED)
        stage = self._data.stages[self._position]

        def refuse(reason: str) -> ApplicationError:
            return ApplicationError(reason, stage.order_index, type=ADVANCE_REFUSED)

        if request.order_index is not None and request.order_index != stage.order_index:
            raise refuse(f"Stage {request.order_index} is not the stage waiting to be advanced.")
        if stage.trigger != "manual":
            raise refuse(
                f"The current stage (order_index {stage.order_index}) is not manual: it moves on by itself "
                f"({stage.trigger})."
            )
        if not self._awaiting_advance:
            raise refuse("The current stage is still running its actions; try again shortly.")
        if self._advanced:
            raise refuse(f"Stage {stage.order_index} has already been advanced by another request.")

    @workflow.query(name="position")
    def current_position(self) -> int:
        """The index of the stage being run (for operators and tests)."""
        return self._position
