"""The SLA workflow on the time-skipping server: due times, breach and escalation, pause, resolution."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from core.temporal import TemporalAccess
from domain.tickets.plan import ticket_workflow_id
from domain.tickets.sla_workflow import reconcile_ticket_sla_starts
from tests.polling import eventually
from tests.tickets.conftest import TICKETS, Desk, SlaWired


async def _due_set(desk: Desk, ticket_id: str) -> Any:
    async def check() -> Any:
        row = await desk.ticket(ticket_id)
        return row if row.resolution_due_at is not None else None

    return await eventually(check)


async def test_workflow_sets_due_times_from_the_tenant_targets(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable
) -> None:
    await desk.set_calendar(weekdays=[])  # a 24/7 desk: business time is wall time
    ticket = await new_ticket(priority="urgent")
    row = await _due_set(desk, ticket["id"])
    opened = row.sla_started_at
    assert row.response_due_at == opened + timedelta(minutes=30)
    assert row.resolution_due_at == opened + timedelta(hours=4)
    assert row.sla_workflow_started_at is not None


async def test_missed_response_escalates_priority_and_notifies_the_fallback_queue(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="high")  # response within 2 h
    await _due_set(desk, ticket["id"])
    await sla_env.env.sleep(timedelta(hours=2, minutes=1))

    async def breached() -> Any:
        row = await desk.ticket(ticket["id"])
        return row if row.response_breached else None

    row = await eventually(breached)
    assert row.priority == "urgent"
    assert row.resolution_breached is False
    (event,) = await desk.events(ticket["id"], "escalated")
    assert event.recipient_queue == "sla-escalations" and event.recipient_id is None
    assert event.details["target"] == "response"
    assert (event.details["priority_from"], event.details["priority_to"]) == ("high", "urgent")


async def test_missed_resolution_notifies_the_assignee(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])
    assignee = uuid.uuid4()
    ticket = await new_ticket(priority="urgent", assigned_to=str(assignee))  # resolve within 4 h
    await _due_set(desk, ticket["id"])
    await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "in_progress"}, headers=auth)
    await sla_env.env.sleep(timedelta(hours=4, minutes=1))

    async def escalations() -> Any:
        return await desk.events(ticket["id"], "escalated")

    (event,) = await eventually(escalations)
    assert event.recipient_id == assignee
    assert event.details["target"] == "resolution"
    row = await desk.ticket(ticket["id"])
    assert row.resolution_breached and not row.response_breached
    listed = await client.get(TICKETS, params={"breached": "true"}, headers=auth)
    assert [t["id"] for t in listed.json()["items"]] == [ticket["id"]]


async def test_waiting_on_the_patient_pauses_the_clock_and_shifts_the_due_time(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="urgent")  # resolve within 4 h
    before = (await _due_set(desk, ticket["id"])).resolution_due_at
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "waiting_on_patient"}, headers=auth)
    await _signal_seen(sla_env, ticket["id"], "waiting_on_patient")
    await sla_env.env.sleep(timedelta(hours=5))  # longer than the whole target: no breach while paused
    await client.patch(url, json={"status": "in_progress"}, headers=auth)

    async def shifted() -> Any:
        row = await desk.ticket(ticket["id"])
        return row if row.resolution_due_at != before else None

    row = await eventually(shifted)
    moved = row.resolution_due_at - before
    assert timedelta(hours=5) <= moved < timedelta(hours=5, minutes=1)
    assert not row.resolution_breached
    assert len(await desk.events(ticket["id"], "sla_paused")) == 1


async def test_resolution_ends_the_workflow(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket()
    await _due_set(desk, ticket["id"])
    await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "resolved"}, headers=auth)
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket["id"]))
    assert await asyncio.wait_for(handle.result(), 15) == "resolved"
    row = await desk.ticket(ticket["id"])
    assert not row.response_breached and not row.resolution_breached


async def test_reopen_starts_a_new_cycle(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="urgent")
    await _due_set(desk, ticket["id"])
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "resolved"}, headers=auth)
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket["id"]))
    await asyncio.wait_for(handle.result(), 15)
    reopened = (await client.patch(url, json={"status": "open"}, headers=auth)).json()
    row = await _due_set(desk, ticket["id"])
    assert row.resolution_due_at == datetime.fromisoformat(reopened["reopened_at"]) + timedelta(hours=4)


async def test_reconciler_starts_the_workflow_of_a_ticket_that_has_none(
    sla_env: SlaWired, desk: Desk, system_sessionmaker: Any
) -> None:
    from domain.tickets.service import create_ticket

    async with desk.session() as session:  # as a journey activity does: no workflow is started
        result = await create_ticket(session, title="Follow up", patient_id=desk.patient_id)
        await session.commit()

    async def client() -> Any:
        return sla_env.env.client

    access = TemporalAccess(get_client=client, task_queue=sla_env.task_queue)
    started = await reconcile_ticket_sla_starts(
        system_sessionmaker, access, older_than_seconds=0, tenant_id=desk.tenant_id
    )
    assert started == 1
    await _due_set(desk, str(result.ticket.id))
    again = await reconcile_ticket_sla_starts(
        system_sessionmaker, access, older_than_seconds=0, tenant_id=desk.tenant_id
    )
    assert again == 0


async def _signal_seen(wired: SlaWired, ticket_id: str, status: str) -> None:
    """Wait until the workflow has taken the status in (so skipped time counts against the pause)."""
    handle = wired.env.client.get_workflow_handle(ticket_workflow_id(ticket_id))

    async def seen() -> bool:
        return await handle.query("status") == status

    await eventually(seen)
