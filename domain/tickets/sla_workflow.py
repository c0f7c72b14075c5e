"""The SLA workflow from the ticket's side: recording its start and the signals it needs.

Each unfinished ticket has one SLA workflow, `ticket-<id>`. Its start is recorded in the transaction that
opened (or reopened) the ticket, and a status change is recorded as the `ticket_changed` signal beside the
change; both are delivered after the commit through `core.workflow_commands`, and by its relay while Temporal
is down. A reopened ticket's start replaces a run still going (its SLA clock starts over).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.gateway import StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import record_signal, record_start
from domain.tickets.models import Ticket
from domain.tickets.plan import (
    SIGNAL_CHANGED,
    WORKFLOW_NAME,
    TicketChanged,
    TicketSlaInput,
    ticket_workflow_id,
)
from domain.tickets.sla_steps import sla_state


def record_sla_start(session: AsyncSession, ticket: Ticket, *, restart: bool) -> None:
    """Record the start of the ticket's SLA workflow (`restart`: replacing a run still going), from the
    ticket's SLA state as the caller's transaction leaves it (its due times set, `sla_steps.set_due_times`;
    what changes after it reaches the workflow as `ticket_changed` signals, delivered after the start)."""
    record_start(
        session,
        WorkflowStart(
            workflow=WORKFLOW_NAME,
            workflow_id=ticket_workflow_id(ticket.id),
            input=TicketSlaInput(
                tenant_id=str(ticket.tenant_id), ticket_id=str(ticket.id), state=sla_state(ticket)
            ),
            search_attributes=ids_of(ticket.tenant_id, ticket.patient_id),
            policy=StartPolicy.REPLACE if restart else StartPolicy.REUSE,
        ),
        tenant_id=ticket.tenant_id,
    )


def record_sla_signal(session: AsyncSession, ticket: Ticket) -> None:
    """Record, with the change, the `ticket_changed` signal to the ticket's SLA workflow (delivered after
    the commit and again until Temporal has it; dropped when the workflow is not running, which reads the
    ticket when it starts)."""
    record_signal(
        session,
        workflow_id=ticket_workflow_id(ticket.id),
        signal=SIGNAL_CHANGED,
        arg=TicketChanged(status=ticket.status, responded=ticket.first_response_at is not None),
    )
