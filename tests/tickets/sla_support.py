"""Helpers for the ticket SLA workflow tests: waiting for the workflow to set a ticket's due times, and for
it to take a status change in."""

from __future__ import annotations

from typing import Any

from domain.tickets.plan import ticket_workflow_id
from tests.polling import eventually
from tests.tickets.conftest import Desk, SlaWired


async def due_set(desk: Desk, ticket_id: str) -> Any:
    async def check() -> Any:
        row = await desk.ticket(ticket_id)
        return row if row.resolution_due_at is not None else None

    return await eventually(check)


async def signal_seen(wired: SlaWired, ticket_id: str, status: str) -> None:
    """Wait until the workflow has taken the status in (so skipped time counts against the pause)."""
    handle = wired.env.client.get_workflow_handle(ticket_workflow_id(ticket_id))

    async def seen() -> bool:
        return await handle.query("status") == status

    await eventually(seen)
