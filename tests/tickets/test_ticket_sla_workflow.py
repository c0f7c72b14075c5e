"""The SLA workflow on the time-skipping server: due times, breach and escalation, pause, resolution."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, update
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from core.database import run_after_commit_jobs
from core.gateway import WorkflowGateway, bind_gateway
from core.workflow_commands import WorkflowCommand
from domain.journeys import service as journeys
from domain.journeys.plan import ActionInput
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import JourneyCreate, JourneyInstanceCreate
from domain.tickets.models import Ticket
from domain.tickets.plan import TicketSlaInput, ticket_workflow_id
from domain.tickets.service import create_ticket
from tests import histories
from tests.outbox import commands_for, tenant_relay, unreachable_gateway
from tests.polling import eventually
from tests.tickets.conftest import TICKETS, Desk, SlaWired
from tests.tickets.sla_support import due_set, signal_seen
from workflows.tickets import TicketSlaWorkflow


async def test_an_opened_ticket_is_due_by_the_tenant_targets_and_its_workflow_starts_from_them(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable
) -> None:
    await desk.set_calendar(weekdays=[])  # a 24/7 desk: business time is wall time
    ticket = await new_ticket(priority="urgent")
    row = await desk.ticket(ticket["id"])  # set by the opening's transaction, no workflow step awaited
    opened = row.sla_started_at
    assert row.response_due_at == opened + timedelta(minutes=30)
    assert row.resolution_due_at == opened + timedelta(hours=4)
    (start,) = await commands_for(desk.sessionmaker, ticket_workflow_id(ticket["id"]))  # recorded with it
    assert (start.kind, start.outcome) == ("start", "delivered")  # and delivered after the commit
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket["id"]))
    state = await handle.query("sla")
    assert (state["response_due_at"], state["resolution_due_at"], state["cycle"]) == (
        row.response_due_at.isoformat(),
        row.resolution_due_at.isoformat(),
        opened.isoformat(),
    )
    history = await handle.fetch_history()
    assert "ticket_sla_begin" not in histories.activity_types(history)


async def test_a_run_started_without_due_times_sets_them_itself(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable
) -> None:
    """A start recorded before tickets got their due times when opened (still pending in the outbox, or a
    run continued as new) carries no state: the workflow's first step sets and reads them."""
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="urgent")
    workflow_id = ticket_workflow_id(ticket["id"])
    await sla_env.env.client.get_workflow_handle(workflow_id).terminate("replaced by this test's run")
    async with desk.session() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(ticket["id"]))
            .values(response_due_at=None, resolution_due_at=None)
        )
        await session.commit()
    handle = await sla_env.env.client.start_workflow(
        TicketSlaWorkflow.run,
        TicketSlaInput(tenant_id=str(desk.tenant_id), ticket_id=ticket["id"]),
        id=workflow_id,
        task_queue=sla_env.task_queue,
    )
    row = await due_set(desk, ticket["id"])
    assert row.response_due_at == row.sla_started_at + timedelta(minutes=30)
    assert row.resolution_due_at == row.sla_started_at + timedelta(hours=4)
    assert "ticket_sla_begin" in histories.activity_types(await handle.fetch_history())


async def test_missed_response_escalates_priority_and_notifies_the_fallback_queue(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="high")  # response within 2 h
    await due_set(desk, ticket["id"])
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
    await due_set(desk, ticket["id"])
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
    before = (await due_set(desk, ticket["id"])).resolution_due_at
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "waiting_on_patient"}, headers=auth)
    await signal_seen(sla_env, ticket["id"], "waiting_on_patient")
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
    await due_set(desk, ticket["id"])
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
    await due_set(desk, ticket["id"])
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "resolved"}, headers=auth)
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket["id"]))
    await asyncio.wait_for(handle.result(), 15)
    reopened = (await client.patch(url, json={"status": "open"}, headers=auth)).json()
    due = datetime.fromisoformat(reopened["reopened_at"]) + timedelta(hours=4)
    assert datetime.fromisoformat(reopened["resolution_due_at"]) == due  # the new cycle's, in the answer
    assert (await desk.ticket(ticket["id"])).resolution_due_at == due
    new_run = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket["id"]))

    async def running_from_it() -> bool:
        state = await new_run.query("sla")
        cycle = datetime.fromisoformat(state["cycle"])
        return state["resolution_due_at"] == due.isoformat() and cycle == due - timedelta(hours=4)

    await eventually(running_from_it, "the new run to start from the reopened cycle's due times")


async def test_a_ticket_a_journey_opens_gets_its_sla_workflow_through_the_command_it_records(
    sla_env: SlaWired, desk: Desk, activity_deps: ActivityDeps
) -> None:
    """The journey's ticket step opens the ticket through `create_ticket`, which records the SLA start in
    the step's transaction; the step's commit delivers it on the worker's task queue. Nothing sweeps."""
    stage = {"name": "Call", "order_index": 1, "actions": [{"type": "create_ticket", "title": "Call back"}]}
    async with desk.session() as session:
        journey = await journeys.create_journey(
            JourneyRepository(session), JourneyCreate.model_validate({"name": "Follow-up", "stages": [stage]})
        )
        instance, _ = await journeys.create_instance(
            session, JourneyInstanceCreate(journey_id=journey.id, patient_id=desk.patient_id)
        )
        await session.execute(  # no journey workflow here: this test runs its ticket step alone
            update(WorkflowCommand)
            .where(WorkflowCommand.workflow_id == instance.workflow_id)
            .values(delivered_at=func.now(), outcome="settled")
        )
        await session.commit()
    env = ActivityEnvironment(client=sla_env.env.client)
    env.info = dataclasses.replace(env.info, task_queue=sla_env.task_queue)  # the worker's own queue

    ticket_id = await env.run(
        JourneyActivities(activity_deps).create_journey_ticket,
        ActionInput(str(desk.tenant_id), str(instance.id), 1, 0),
    )

    row = await due_set(desk, ticket_id)  # the SLA workflow is running and has set the due times
    assert row.journey_instance_id == instance.id and row.status == "open"
    (start,) = await commands_for(desk.sessionmaker, ticket_workflow_id(ticket_id))
    assert (start.kind, start.outcome, start.attempts) == ("start", "delivered", 0)
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket_id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_a_ticket_opened_while_temporal_is_down_gets_its_sla_workflow_from_the_relay_once(
    sla_env: SlaWired, desk: Desk, system_sessionmaker: Any
) -> None:
    async with desk.session() as session:
        bind_gateway(session, unreachable_gateway())
        result = await create_ticket(session, title="Follow up", patient_id=desk.patient_id)
        await session.commit()
        await run_after_commit_jobs(session)  # the fast path meets the outage: the start waits
    ticket_id = str(result.ticket.id)
    workflow_id = ticket_workflow_id(ticket_id)
    (pending,) = await commands_for(system_sessionmaker, workflow_id)
    assert (pending.kind, pending.delivered_at, pending.attempts) == ("start", None, 1)
    assert (await desk.ticket(ticket_id)).sla_started_at is not None  # the ticket is saved

    relay = tenant_relay(
        system_sessionmaker, desk.tenant_id, WorkflowGateway.of_client(sla_env.env.client, sla_env.task_queue)
    )
    await relay()  # Temporal is back
    await due_set(desk, ticket_id)
    (delivered,) = await commands_for(system_sessionmaker, workflow_id)
    assert delivered.outcome == "delivered" and delivered.delivered_at is not None
    await relay()  # delivered once: a second round sends nothing
    (after,) = await commands_for(system_sessionmaker, workflow_id)
    assert (after.delivered_at, after.outcome) == (delivered.delivered_at, "delivered")
