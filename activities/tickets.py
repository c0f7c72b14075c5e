"""Ticket SLA activities: set the due times, escalate a missed target, shift the clock after a pause.

Each takes one dataclass of ids (never PHI), opens its own transaction scoped to the input's tenant, locks
the ticket row, and is idempotent under retry: escalations and pause shifts are ticket events under a key
the database holds unique per tenant (`sla:{ticket}:{run}:...`), written in the same transaction as the
change they stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import ActivityDeps
from domain.tickets import sla_steps
from domain.tickets.plan import BreachInput, PauseInput, SlaState, TicketRef


class TicketActivities:
    """The ticket SLA activities, bound to the worker's database."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="ticket_sla_begin")
    async def begin(self, data: TicketRef) -> SlaState:
        """Set the ticket's due times for the current cycle (once) and return its SLA state."""
        async with self.deps.unit_of_work(data.tenant_id) as session:  # a ticket gone: NotFound, final
            return await sla_steps.begin_sla(session, data.ticket_id)

    @activity.defn(name="ticket_sla_breach")
    async def breach(self, data: BreachInput) -> SlaState:
        """Escalate a missed target once (flag, raise priority, notify) unless it no longer applies."""
        async with self.deps.unit_of_work(data.tenant_id) as session:  # the metric counts once committed
            return await sla_steps.record_breach(session, data)

    @activity.defn(name="ticket_sla_pause")
    async def pause(self, data: PauseInput) -> SlaState:
        """Move the pending due times by the business time spent waiting on the patient (once)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            return await sla_steps.shift_for_pause(session, data)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [self.begin, self.breach, self.pause]
