"""An appointment's reminder workflow starts from the outbox: booked while Temporal is unreachable, the
appointment is booked all the same (201) with its start recorded in the same transaction, and the worker's
relay starts the workflow once Temporal answers, once, with what changed meanwhile delivered after it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
from temporalio.service import RPCError

from core.database import bind_tenant, make_engine, run_after_commit_jobs
from core.gateway import WorkflowGateway
from core.periodic import PeriodicJob, PeriodicRunner
from domain.scheduling.models import Appointment
from domain.scheduling.plan import APPOINTMENT_WORKFLOW, appointment_workflow_id
from domain.scheduling.workflow_jobs import start_appointment_workflow
from tests.outbox import commands_for, relay_rounds, tenant_relay
from tests.polling import eventually
from tests.scheduling.conftest import API
from tests.scheduling.reminder_support import book_at, server_now
from workflows.appointments import AppointmentWorkflow

BASE = f"{API}/appointments"


async def not_started(client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return True
    return False


async def test_an_appointment_booked_while_temporal_is_unreachable_gets_its_reminders_once_it_answers(
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
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=3)
    moved_to = start + timedelta(days=1)
    app.state.temporal_client = None  # the API connects to settings.temporal_address: nothing listens there
    try:
        began = time.monotonic()
        booked = await book_at(client, auth, patient, practitioner, start)  # 201
        resp = await client.patch(
            f"{BASE}/{booked['id']}",
            json={
                "start_time": moved_to.isoformat(),
                "end_time": (moved_to + timedelta(minutes=30)).isoformat(),
            },
            headers=auth,
        )
        assert resp.status_code == 200, resp.text
        assert (
            time.monotonic() - began < 10
        )  # bounded waits on the unreachable Temporal, not the SDK's retries
    finally:
        app.state.temporal_client = temporal_env.client
    workflow_id = appointment_workflow_id(uuid.UUID(booked["id"]))

    recorded = await commands_for(system_sessionmaker, workflow_id)
    assert [(c.kind, c.signal, c.start_workflow, c.delivered_at) for c in recorded] == [
        ("start", None, APPOINTMENT_WORKFLOW, None),
        ("signal", "reschedule", APPOINTMENT_WORKFLOW, None),  # a signal-with-start: it cannot come first
    ]
    assert await not_started(temporal_env.client, workflow_id)

    relay = tenant_relay(
        system_sessionmaker,
        tenant_id,
        WorkflowGateway.of_client(temporal_env.client, settings.temporal_task_queue),
    )
    await relay_rounds(relay)
    delivered = await commands_for(system_sessionmaker, workflow_id)
    assert [(c.kind, c.outcome) for c in delivered] == [("start", "delivered"), ("signal", "delivered")]
    assert all(c.delivered_at is not None for c in delivered)
    handle = temporal_env.client.get_workflow_handle(workflow_id)
    state = await handle.query(AppointmentWorkflow.state)
    assert state.start_time == moved_to.isoformat()  # the start went first, then the reschedule
    assert state.next_reminder_at == (moved_to - timedelta(hours=24)).isoformat()
    run_id = (await handle.describe()).run_id

    await relay_rounds(relay)  # a later round sends nothing again
    assert [c.delivered_at for c in await commands_for(system_sessionmaker, workflow_id)] == [
        c.delivered_at for c in delivered
    ]
    assert (await handle.describe()).run_id == run_id


async def test_the_workers_periodic_relay_starts_what_a_process_without_temporal_recorded(
    settings,
    database_url,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    """A script or import that books with no gateway leaves the start to the worker: its periodic
    "workflow-commands" job delivers it without anyone asking."""
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=4)
    async with system_sessionmaker() as session:  # as a CLI script books: no gateway bound
        bind_tenant(session, tenant_id)
        appointment = Appointment(
            patient_id=patient.id,
            practitioner_id=uuid.UUID(practitioner["id"]),
            start_time=start,
            end_time=start + timedelta(minutes=30),
        )
        session.add(appointment)
        await session.flush()
        await start_appointment_workflow(session, appointment)
        await session.commit()
        await run_after_commit_jobs(session)  # nothing to deliver through: the command waits
    workflow_id = appointment_workflow_id(appointment.id)
    assert [c.delivered_at for c in await commands_for(system_sessionmaker, workflow_id)] == [None]
    assert await not_started(temporal_env.client, workflow_id)

    relay = tenant_relay(
        system_sessionmaker,
        tenant_id,
        WorkflowGateway.of_client(temporal_env.client, settings.temporal_task_queue),
    )
    engine = make_engine(database_url, settings)
    stop = asyncio.Event()
    runner = asyncio.create_task(
        PeriodicRunner(engine, [PeriodicJob("workflow-commands", 0.2, relay)]).run(stop)
    )
    try:

        async def started() -> bool:
            return not await not_started(temporal_env.client, workflow_id)

        await eventually(started, "the periodic relay's start")
    finally:
        stop.set()
        await runner
        await engine.dispose()
    assert [c.outcome for c in await commands_for(system_sessionmaker, workflow_id)] == ["delivered"]
    state = await temporal_env.client.get_workflow_handle(workflow_id).query(AppointmentWorkflow.state)
    assert state.next_reminder_at == (start - timedelta(hours=24)).isoformat()
