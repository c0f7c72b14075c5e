"""The SLA workflow from the API's side: starting it after a commit, signalling it, restarting lost starts.

Each unfinished ticket has one SLA workflow, `ticket-<id>`, started after the commit that opened (or
reopened) it; the API tells it about status changes with the `ticket_changed` signal, sent after the commit.
A lost start (Temporal down, or a ticket a journey's activity created) is picked up by
`reconcile_ticket_sla_starts`; a lost signal is corrected when the workflow's next timer fires, because
the breach activity re-reads the ticket before it escalates.

Apart from `service` (the ticket's lifecycle) because this is the only part that talks to Temporal: the
lifecycle calls it, and the reconciler uses it without the lifecycle.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.database import after_commit, scope_to
from core.temporal import RPC_TIMEOUT, SA_PATIENT_ID, SA_TENANT_ID, TemporalAccess
from core.workflow_commands import record_signal
from domain.tickets.models import Ticket
from domain.tickets.plan import (
    SIGNAL_CHANGED,
    WORKFLOW_NAME,
    TicketChanged,
    TicketSlaInput,
    ticket_workflow_id,
)
from domain.tickets.repository import TicketRepository

log = logging.getLogger(__name__)


def search_attributes_for(ticket: Ticket) -> TypedSearchAttributes:
    """The ids operators filter on in the Temporal UI (never PHI)."""
    pairs: list[SearchAttributePair] = [SearchAttributePair(SA_TENANT_ID, str(ticket.tenant_id))]
    if ticket.patient_id is not None:
        pairs.append(SearchAttributePair(SA_PATIENT_ID, str(ticket.patient_id)))
    return TypedSearchAttributes(pairs)


async def start_sla_workflow(access: TemporalAccess, ticket: Ticket, *, restart: bool = False) -> bool:
    """Start the ticket's SLA workflow; False when it is already running. `restart` replaces a running one."""
    client = await access.get_client()
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            TicketSlaInput(tenant_id=str(ticket.tenant_id), ticket_id=str(ticket.id)),
            id=ticket_workflow_id(ticket.id),
            task_queue=access.task_queue,
            search_attributes=search_attributes_for(ticket),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=(
                WorkflowIDConflictPolicy.TERMINATE_EXISTING if restart else WorkflowIDConflictPolicy.FAIL
            ),
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def start_after_commit(
    session: AsyncSession, access: TemporalAccess, ticket: Ticket, *, restart: bool
) -> None:
    """Start the ticket's SLA workflow once the session commits (a failure leaves it to the reconciler)."""
    ticket_id = ticket.id

    async def start() -> None:
        try:
            await start_sla_workflow(access, ticket, restart=restart)
        except Exception as exc:  # the ticket is saved; the reconciler starts the workflow later
            log.warning("could not start the SLA workflow of ticket %s: %s", ticket_id, type(exc).__name__)

    after_commit(session, start)


def signal_after_commit(session: AsyncSession, ticket: Ticket) -> None:
    """Record, with the change, the `ticket_changed` signal to the ticket's SLA workflow (delivered after
    the commit and again until Temporal has it; dropped when the workflow is not running, which reads the
    ticket when it starts)."""
    record_signal(
        session,
        workflow_id=ticket_workflow_id(ticket.id),
        signal=SIGNAL_CHANGED,
        arg=TicketChanged(status=ticket.status, responded=ticket.first_response_at is not None),
    )


async def reconcile_ticket_sla_starts(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: TemporalAccess,
    *,
    older_than_seconds: float = 60.0,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Start the SLA workflows of unfinished tickets whose start was never confirmed; how many started."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with sessionmaker() as session:
        scope_to(session, tenant_id)
        lost = await TicketRepository(session).lost_sla_starts(older_than=cutoff)
    started = 0
    for ticket in lost:
        if await start_sla_workflow(access, ticket):
            started += 1
            log.info("started the lost SLA workflow of ticket %s", ticket.id)
    return started
