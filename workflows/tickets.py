"""One workflow per unfinished ticket (`ticket-<id>`): keeps its SLA clock.

It starts from the due times the ticket got when it was opened or reopened (business hours of the
tenant's time zone; a run started without them sets them through an activity) and sleeps until the next
one. When a target passes unmet it escalates: the breach flag is set, the priority goes up a step, and an
`escalated` ticket event names the assignee (or the tenant's fallback queue) to notify. While the ticket
waits on the patient the clock stops; on resuming, the pending due times move by the business time spent
waiting. It ends when the ticket is resolved or closed; a reopen starts a new run.

The API tells it about status changes with the `ticket_changed` signal. The activities re-read the ticket,
so a signal lost in transit is corrected when the next timer fires. Deterministic: time is
`workflow.now()`; all calendar arithmetic and every write happen in activities (or in the
transaction that opened the ticket).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.tickets import TicketActivities
    from domain.tickets.plan import (
        FINAL_STATUSES,
        PAUSED_STATUS,
        SIGNAL_CHANGED,
        WORKFLOW_NAME,
        BreachInput,
        PauseInput,
        SlaState,
        TicketChanged,
        TicketRef,
        TicketSlaInput,
        breach_key,
        pause_key,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)


@workflow.defn(name=WORKFLOW_NAME)
class TicketSlaWorkflow:
    """The SLA clock of one ticket, from opening (or reopening) to resolution."""

    def __init__(self) -> None:
        self._status = "open"
        self._responded = False
        self._changes = 0  # signals received; state read before a newer signal must not overwrite it
        self._state: SlaState | None = None

    @workflow.run
    async def run(self, data: TicketSlaInput) -> str:
        """Keep the clock until the ticket is resolved or closed; its final status."""
        # A cycle's due times are set when the ticket is opened or reopened, and its start carries them.
        # Runs started before that (and after a continue-as-new) read them with `begin`. The input is in
        # the history, so a replay takes the same branch: no patch needed.
        state = data.state or await self._call(
            TicketActivities.begin, TicketRef(data.tenant_id, data.ticket_id)
        )
        self._adopt(state, seen=0)
        paused_since = datetime.fromisoformat(data.paused_since) if data.paused_since else None
        while self._status not in FINAL_STATUSES:
            if self._status == PAUSED_STATUS or paused_since is not None:
                paused_since = paused_since or workflow.now()
                await workflow.wait_condition(lambda: self._status != PAUSED_STATUS)
                if self._status in FINAL_STATUSES:
                    break
                seen = self._changes
                state = await self._pause_over(data, paused_since)
                self._adopt(state, seen)
                paused_since = None
                continue
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(TicketSlaInput(data.tenant_id, data.ticket_id))
            seen = self._changes
            kind, due = self._next_due()
            if due is None:
                await workflow.wait_condition(self._changed_since(seen))
                continue
            wait = due - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(self._changed_since(seen), timeout=wait)
                    continue
                except TimeoutError:
                    pass
            state = await self._breach(data, kind)
            self._adopt(state, seen)
        return self._status

    def _changed_since(self, seen: int) -> Callable[[], bool]:
        """A condition that turns true once a signal arrives after the `seen`-th."""
        return lambda: self._changes != seen

    def _next_due(self) -> tuple[str, datetime | None]:
        """The earliest target still running: (`response` | `resolution`, due time), or ("", None)."""
        assert self._state is not None
        pending: list[tuple[datetime, str]] = []
        if self._state.response_due_at and not self._responded and not self._state.response_breached:
            pending.append((datetime.fromisoformat(self._state.response_due_at), "response"))
        if self._state.resolution_due_at and not self._state.resolution_breached:
            pending.append((datetime.fromisoformat(self._state.resolution_due_at), "resolution"))
        if not pending:
            return "", None
        due, kind = min(pending)
        return kind, due

    def _adopt(self, state: SlaState, seen: int) -> None:
        """Take the stored due times and flags; take the stored status only if no newer signal came in."""
        self._state = state
        self._responded = self._responded or state.responded
        if self._changes == seen:
            self._status = state.status

    async def _breach(self, data: TicketSlaInput, kind: str) -> SlaState:
        assert self._state is not None
        return await self._call(
            TicketActivities.breach,
            BreachInput(
                tenant_id=data.tenant_id,
                ticket_id=data.ticket_id,
                kind=kind,
                at=workflow.now().isoformat(),
                key=breach_key(data.ticket_id, self._state.cycle, kind),
            ),
        )

    async def _pause_over(self, data: TicketSlaInput, paused_since: datetime) -> SlaState:
        assert self._state is not None
        start = paused_since.isoformat()
        return await self._call(
            TicketActivities.pause,
            PauseInput(
                tenant_id=data.tenant_id,
                ticket_id=data.ticket_id,
                paused_from=start,
                paused_to=workflow.now().isoformat(),
                key=pause_key(data.ticket_id, self._state.cycle, start),
            ),
        )

    async def _call(self, method: Any, arg: Any) -> SlaState:
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    @workflow.signal(name=SIGNAL_CHANGED)
    def ticket_changed(self, change: TicketChanged) -> None:
        """The ticket's status changed (or its first response was recorded) through the API."""
        self._status = change.status
        self._responded = self._responded or change.responded
        self._changes += 1

    @workflow.query(name="status")
    def status(self) -> str:
        """The ticket status the workflow is working from."""
        return self._status

    @workflow.query(name="sla")
    def sla(self) -> SlaState | None:
        """The SLA state the workflow is working from (for operators and tests)."""
        return self._state
