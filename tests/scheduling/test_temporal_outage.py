"""A reschedule and a cancellation made while Temporal is stopped take effect when it returns.

A real Temporal dev server (its state in a file) is stopped and started again on the same port; the API
answers while it is down, records the signals with the changes (after the starts recorded with the
bookings), and the worker's relay delivers them, in order, once Temporal is back: the right reminder is
pending, one cancellation message goes out, nothing twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from core.database import mark_system
from core.gateway import WorkflowGateway
from core.workflow_commands import WorkflowCommand
from domain.scheduling.plan import appointment_workflow_id
from tests.dedicated_postgres import free_port
from tests.outbox import commands_for, relay_rounds, tenant_relay
from tests.polling import eventually
from tests.scheduling.conftest import API
from tests.scheduling.reminder_support import book_at, messages, server_now
from tests.temporal_envs import start_dev_server
from workflows.appointments import AppointmentWorkflow
from workflows.registry import ALL_WORKFLOWS

BASE = f"{API}/appointments"


@asynccontextmanager
async def worker(client: Client, queue: str, deps: ActivityDeps) -> AsyncIterator[Worker]:
    async with Worker(
        client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=build_activities(deps)
    ) as running:
        yield running


async def pending_commands(sessionmaker, *workflow_ids: str) -> list[str]:
    async with sessionmaker() as session:
        mark_system(session)
        rows = await session.scalars(
            select(WorkflowCommand.signal)
            .where(WorkflowCommand.workflow_id.in_(workflow_ids), WorkflowCommand.delivered_at.is_(None))
            .order_by(WorkflowCommand.id)
        )
        return list(rows)


async def running(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except Exception:
        return False


async def test_a_reschedule_and_a_cancel_made_while_temporal_is_down_take_effect_when_it_returns(
    app,
    client: httpx.AsyncClient,
    auth: dict,
    settings,
    tenant_id,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    tmp_path: Path,
    monkeypatch,
) -> None:
    port, db_file, queue = free_port(), tmp_path / "temporal.db", f"outage-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_address", f"127.0.0.1:{port}")
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    previous_client = getattr(app.state, "temporal_client", None)
    app.state.temporal_client = None  # the app connects to this test's server on first use
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    server = await start_dev_server(port=port, db_file=db_file)
    try:
        temporal = await Client.connect(f"127.0.0.1:{port}")  # the worker's client, kept through the outage
        patient, practitioner = await make_patient(), await make_practitioner()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        moved = await book_at(client, auth, patient, practitioner, now + timedelta(days=3))
        cancelled = await book_at(client, auth, patient, practitioner, now + timedelta(days=4))
        moved_id, cancelled_id = (appointment_workflow_id(uuid.UUID(a["id"])) for a in (moved, cancelled))
        async with worker(temporal, queue, deps):
            for workflow_id in (moved_id, cancelled_id):
                await eventually(lambda w=workflow_id: running(temporal, w), "the reminder workflow")

        assert [
            [(c.kind, c.outcome) for c in await commands_for(system_sessionmaker, w)]
            for w in (moved_id, cancelled_id)
        ] == [[("start", "delivered")]] * 2  # the bookings' starts went right after their commits

        relay = tenant_relay(system_sessionmaker, tenant_id, WorkflowGateway.of_client(temporal, queue))
        await server.shutdown()

        new_start = now + timedelta(days=5)
        began = time.monotonic()
        resp = await client.patch(
            f"{BASE}/{moved['id']}",
            json={
                "start_time": new_start.isoformat(),
                "end_time": (new_start + timedelta(minutes=30)).isoformat(),
            },
            headers=auth,
        )
        assert resp.status_code == 200, resp.text
        assert (await client.post(f"{BASE}/{cancelled['id']}/cancel", headers=auth)).status_code == 200
        assert time.monotonic() - began < 10  # bounded waits, not the SDK's retries
        assert await pending_commands(system_sessionmaker, moved_id, cancelled_id) == ["reschedule", "cancel"]
        await relay()  # the worker's relay, while Temporal is still down: it delivers nothing, loses nothing
        assert not relay.temporal_up
        assert await pending_commands(system_sessionmaker, moved_id, cancelled_id) == ["reschedule", "cancel"]

        # Temporal is back, with the workflows it had
        server = await start_dev_server(port=port, db_file=db_file)
        async with worker(temporal, queue, deps):
            await relay_rounds(relay)  # (whether it reports Temporal back at once: the test below)
            assert await pending_commands(system_sessionmaker, moved_id, cancelled_id) == []
            state = await temporal.get_workflow_handle(moved_id).query(AppointmentWorkflow.state)
            assert state.start_time == new_start.isoformat()
            assert state.next_reminder_at == (new_start - timedelta(hours=24)).isoformat()
            assert await temporal.get_workflow_handle(cancelled_id).result() == "cancelled"

            cancellation = f"appointment:{cancelled['id']}:cancellation"

            async def told_once() -> bool:
                return await messages(system_sessionmaker, tenant_id, cancelled["id"]) == [cancellation]

            await eventually(told_once, "the cancellation message")
            await relay_rounds(relay)  # a later round sends nothing of ours again
            assert await messages(system_sessionmaker, tenant_id, cancelled["id"]) == [cancellation]
            assert await messages(system_sessionmaker, tenant_id, moved["id"]) == []
            assert [
                [(c.kind, c.signal, c.outcome) for c in await commands_for(system_sessionmaker, w)]
                for w in (moved_id, cancelled_id)
            ] == [
                [("start", None, "delivered"), ("signal", "reschedule", "delivered")],
                [("start", None, "delivered"), ("signal", "cancel", "delivered")],
            ]
    finally:
        app.state.temporal_client = previous_client
        await server.shutdown()


async def test_the_relay_reports_temporal_back_as_soon_as_a_round_delivers_again(
    app,
    client: httpx.AsyncClient,
    auth: dict,
    settings,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    """The relay logs when Temporal goes away and when it comes back, and a round says more is due at once
    only while Temporal answers: a round that delivers after an outage knows Temporal is back."""
    patient, practitioner = await make_patient(), await make_practitioner()
    app.state.temporal_client = None  # nothing listens at settings.temporal_address: the start waits
    try:
        booked = await book_at(
            client, auth, patient, practitioner, await server_now(temporal_env) + timedelta(days=3)
        )
    finally:
        app.state.temporal_client = temporal_env.client
    workflow_id = appointment_workflow_id(uuid.UUID(booked["id"]))
    temporal = {"up": False}

    async def get_client() -> Client:
        if not temporal["up"]:
            raise ConnectionError("Temporal is down")
        return temporal_env.client

    relay = tenant_relay(
        system_sessionmaker, tenant_id, WorkflowGateway(get_client, settings.temporal_task_queue)
    )
    await relay()
    assert not relay.temporal_up
    assert [c.delivered_at for c in await commands_for(system_sessionmaker, workflow_id)] == [None]

    temporal["up"] = True
    await relay()
    assert [c.outcome for c in await commands_for(system_sessionmaker, workflow_id)] == ["delivered"]
    assert relay.temporal_up  # it just delivered through Temporal
