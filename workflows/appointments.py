"""One workflow per appointment: reminders at the tenant's offsets that follow reschedules, stop on cancel."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.appointments import AppointmentActivities
    from domain.scheduling.plan import (
        APPOINTMENT_WORKFLOW,
        SIGNAL_CANCEL,
        SIGNAL_FINISH,
        SIGNAL_RESCHEDULE,
        AppointmentWorkflowInput,
        AppointmentWorkflowState,
        CancellationMessageInput,
        CancelSignal,
        FinishSignal,
        ReminderInput,
        RescheduleSignal,
    )

# Sized to the call: a few database writes and the start of a message's delivery workflow (an RPC that gives
# up after 5 s). The activities heartbeat, so a worker that died mid-activity is noticed after
# SEND_HEARTBEAT and the retry runs within seconds, not after the start-to-close timeout. (Changing these
# options does not break replay: replay checks the commands and activity types.)
SEND_TIMEOUT = timedelta(seconds=30)
SEND_HEARTBEAT = timedelta(seconds=5)
# Reminders are keyed by the start time they were planned for (not the time a reschedule set during the
# send), and a patient reminded of a time that then changed is reminded of the new one.
PLANNED_START_PATCH = "reminder-planned-start"


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    return getattr(cause, "message", None) or type(cause or exc).__name__


@workflow.defn(name=APPOINTMENT_WORKFLOW)
class AppointmentWorkflow:
    """Sleeps until each reminder is due and sends it; a reschedule moves what is still pending."""

    def __init__(self) -> None:
        self._start: datetime | None = None
        self._end: datetime | None = None
        self._cancel: CancelSignal | None = None
        self._finish: FinishSignal | None = None
        self._changed = False
        self._sent: list[str] = []
        self._next: datetime | None = None
        self._reminded_start: datetime | None = None  # the time the last reminder sent was for
        self._failed: list[str] = []

    @workflow.run
    async def run(self, wf_input: AppointmentWorkflowInput) -> str:
        """Send the due reminders until the appointment is over, cancelled or finished."""
        if self._start is None:  # a reschedule delivered with the start already set the time
            self._start = datetime.fromisoformat(wf_input.start_time)
            self._end = datetime.fromisoformat(wf_input.end_time)
        offsets = sorted(set(wf_input.reminder_offsets_minutes), reverse=True)
        while True:
            if self._cancel is not None:
                if self._cancel.notify_patient:
                    try:
                        await workflow.execute_activity_method(
                            AppointmentActivities.send_appointment_cancellation,
                            CancellationMessageInput(wf_input.tenant_id, wf_input.appointment_id),
                            start_to_close_timeout=SEND_TIMEOUT,
                            heartbeat_timeout=SEND_HEARTBEAT,
                        )
                    except ActivityError as exc:  # final: the patient cannot be told by message
                        self._failed.append(f"cancellation: {_reason(exc)}")
                return "cancelled"
            if self._finish is not None:
                return self._finish.status
            assert self._start is not None and self._end is not None
            now = workflow.now()
            planned_start = workflow.patched(PLANNED_START_PATCH)
            due = [
                (self._start - timedelta(minutes=offset), offset)
                for offset in offsets
                if self._start - timedelta(minutes=offset) > now and self._key(offset) not in self._sent
            ]
            if (
                planned_start
                and offsets
                and not due
                and self._reminded_start not in (None, self._start)
                and now < self._start
            ):
                # The patient was reminded of a time that changed, and no reminder of the new time is left
                # to come: remind them of the right time now (the nearest offset's key, so only once).
                due = [(now, min(offsets))] if self._key(min(offsets)) not in self._sent else []
            fire_at, offset = min(due) if due else (self._end, None)
            self._next = fire_at if due else None
            self._changed = False
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=max(fire_at - now, timedelta(0)))
                continue
            except TimeoutError:
                pass
            if offset is None:
                return "ended"
            start = self._start  # the time this reminder is for, even if a reschedule arrives during the send
            try:
                await workflow.execute_activity_method(
                    AppointmentActivities.send_appointment_reminder,
                    ReminderInput(
                        tenant_id=wf_input.tenant_id,
                        appointment_id=wf_input.appointment_id,
                        offset_minutes=offset,
                        start_time=start.isoformat(),
                    ),
                    start_to_close_timeout=SEND_TIMEOUT,
                    heartbeat_timeout=SEND_HEARTBEAT,
                )
            except ActivityError as exc:  # final (e.g. no way to reach the patient): recorded, not retried
                self._failed.append(f"{offset}:{start.isoformat()}: {_reason(exc)}")
            if planned_start:
                self._sent.append(f"{offset}:{start.isoformat()}")
                self._reminded_start = start
            else:
                self._sent.append(self._key(offset))

    def _key(self, offset: int) -> str:
        assert self._start is not None
        return f"{offset}:{self._start.isoformat()}"

    @workflow.signal(name=SIGNAL_RESCHEDULE)
    def reschedule(self, signal: RescheduleSignal) -> None:
        """Move the pending reminders to the new time."""
        self._start = datetime.fromisoformat(signal.start_time)
        self._end = datetime.fromisoformat(signal.end_time)
        self._changed = True

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel(self, signal: CancelSignal) -> None:
        """Stop the reminders (and send the cancellation message if asked)."""
        self._cancel = signal
        self._changed = True

    @workflow.signal(name=SIGNAL_FINISH)
    def finish(self, signal: FinishSignal) -> None:
        """End the workflow: the appointment is completed, a no-show, or gone."""
        self._finish = signal
        self._changed = True

    @workflow.query(name="state")
    def state(self) -> AppointmentWorkflowState:
        """The current appointment time, the reminders sent, and the next one due."""
        return AppointmentWorkflowState(
            start_time=self._start.isoformat() if self._start else "",
            sent_reminder_keys=list(self._sent),
            next_reminder_at=self._next.isoformat() if self._next else None,
            failed=list(self._failed),
        )
