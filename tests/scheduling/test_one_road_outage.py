"""One road to Temporal, from the outside: every create answers 2xx while Temporal is down, and once it is
back every workflow starts, every signal and cancel arrives once, in order, with two workers running at once.

The real thing end to end: the API in-process, a real Temporal dev server on a port of its own that is not
running during the first half, and two real workers (`worker.run_worker`: the Temporal worker, its periodic
relay, trigger dispatcher and retention) started once Temporal is up. Messages go to the outbox provider.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType

from core.database import mark_system
from core.workflow_commands import WorkflowCommand
from domain.communications.models import Communication
from domain.scheduling.plan import (
    AppointmentWorkflowState,
    appointment_workflow_id,
    waitlist_backfill_workflow_id,
)
from tests.communications.support import set_tenant
from tests.dedicated_postgres import free_port
from tests.polling import eventually
from tests.scheduling.conftest import API, future
from tests.scheduling.waitlist_support import add_entry, templates_sent
from tests.temporal_envs import start_dev_server
from worker import run_worker

WAITING_STAGE = {"name": "Call the patient", "order_index": 0, "trigger_event": "manual", "actions": []}


@pytest.fixture
async def temporal_down(app, settings, monkeypatch):
    """The app pointed at a Temporal address where nothing listens yet, on a task queue of this test's own;
    yields (port, task queue)."""
    port, queue = free_port(), f"one-road-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_address", f"127.0.0.1:{port}")
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    saved = getattr(app.state, "temporal_client", None)
    app.state.temporal_client = None  # the app connects on first use: to this address
    try:
        yield port, queue
    finally:
        app.state.temporal_client = saved


async def _commands(sessionmaker, tenant_id) -> list[WorkflowCommand]:
    async with sessionmaker() as session:
        mark_system(session)
        return list(
            (
                await session.scalars(
                    select(WorkflowCommand)
                    .where(WorkflowCommand.tenant_id == tenant_id)
                    .order_by(WorkflowCommand.id)
                )
            ).all()
        )


async def _sent(sessionmaker, tenant_id, template: str) -> list[Communication]:
    async with sessionmaker() as session:
        mark_system(session)
        return list(
            (
                await session.scalars(
                    select(Communication).where(
                        Communication.tenant_id == tenant_id, Communication.template_name == template
                    )
                )
            ).all()
        )


async def test_everything_made_while_temporal_is_down_reaches_its_workflow_once_after(
    client,
    auth,
    app,
    settings,
    tenant_id,
    system_sessionmaker,
    temporal_down,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    port, _queue = temporal_down
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})  # any time of day
    practitioner = await make_practitioner()
    patient = await make_patient(phone_primary="+14155550311")
    waiting = await make_patient(phone_primary="+14155550312")
    owner = await make_patient(phone_primary="+14155550313")
    journey = await client.post(
        f"{API}/journeys", json={"name": "Outage", "stages": [WAITING_STAGE]}, headers=auth
    )
    assert journey.status_code == 201, journey.text
    await add_entry(client, auth, waiting.id, practitioner_id=practitioner["id"])

    # ---- Temporal is down: every create and change answers 2xx -------------------------------------------
    instance = await client.post(
        f"{API}/journeys/instances",
        json={"journey_id": journey.json()["id"], "patient_id": str(patient.id)},
        headers=auth,
    )
    assert instance.status_code == 201, instance.text
    moved = await book(
        patient_id=str(patient.id),
        practitioner_id=practitioner["id"],
        start_time=future(days=4, hour=9),
        end_time=future(days=4, hour=9, minute=30),
    )
    assert moved.status_code == 201, moved.text
    new_start = future(days=6, hour=11)
    rescheduled = await client.patch(
        f"{API}/appointments/{moved.json()['id']}",
        json={
            "start_time": new_start.isoformat(),
            "end_time": (new_start + timedelta(minutes=30)).isoformat(),
        },
        headers=auth,
    )
    assert rescheduled.status_code == 200, rescheduled.text
    slot = await make_slot(practitioner["id"], future(days=5, hour=10))
    freed = await book(patient_id=str(owner.id), time_slot_id=slot["id"])
    assert freed.status_code == 201, freed.text
    cancelled = await client.post(f"{API}/appointments/{freed.json()['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200, cancelled.text
    ticket = await client.post(
        f"{API}/tickets", json={"title": "Call back", "patient_id": str(patient.id)}, headers=auth
    )
    assert ticket.status_code == 201, ticket.text
    message = await client.post(
        f"{API}/communications",
        json={"patient_id": str(patient.id), "channel": "sms", "message": "See you soon."},
        headers=auth,
    )
    assert message.status_code == 201, message.text

    recorded = await _commands(system_sessionmaker, tenant_id)
    assert recorded and all(c.delivered_at is None for c in recorded)  # all waiting for Temporal
    assert await _sent(system_sessionmaker, tenant_id, "waitlist_offer") == []

    # ---- Temporal comes back; two workers run at once ------------------------------------------------------
    env = await start_dev_server(port=port)
    worker_settings = settings.model_copy(
        update={"worker_metrics_port": 0, "command_relay_interval_seconds": 0.5}
    )
    stop = asyncio.Event()
    workers = [asyncio.create_task(run_worker(worker_settings, stop)) for _ in range(2)]
    try:

        async def all_delivered() -> list[WorkflowCommand] | None:
            rows = await _commands(system_sessionmaker, tenant_id)
            return rows if all(c.delivered_at is not None for c in rows) else None

        delivered = await eventually(all_delivered, "every command delivered", within=60)
        assert {c.outcome for c in delivered} <= {"delivered", "already_started", "not_running"}

        async def offered_and_told() -> bool | None:
            offers = await _sent(system_sessionmaker, tenant_id, "waitlist_offer")
            told = await _sent(system_sessionmaker, tenant_id, "appointment_cancelled")
            return True if offers and told else None

        await eventually(offered_and_told, "the waitlist offer and the cancellation message", within=60)
        handle = env.client.get_workflow_handle
        workflow_ids = {
            instance.json()["workflow_id"],
            appointment_workflow_id(uuid.UUID(moved.json()["id"])),
            appointment_workflow_id(uuid.UUID(freed.json()["id"])),
            waitlist_backfill_workflow_id(uuid.UUID(freed.json()["id"])),
            f"ticket-{ticket.json()['id']}",
            f"communication-{message.json()['id']}",
        }
        for workflow_id in workflow_ids:
            assert (await handle(workflow_id).describe()).status is not None, workflow_id
        state = await handle(appointment_workflow_id(uuid.UUID(moved.json()["id"]))).query(
            "state", result_type=AppointmentWorkflowState
        )
        assert datetime.fromisoformat(state.start_time) == new_start  # the reschedule came after the start

        # Each signal arrived once: a workflow's history holds as many signals as were recorded for it.
        await asyncio.sleep(1.0)  # a late duplicate would show in the history by now
        recorded_signals = Counter(c.workflow_id for c in delivered if c.kind == "signal")
        for workflow_id, count in recorded_signals.items():
            history = await handle(workflow_id).fetch_history()
            signalled = sum(
                1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            )
            assert signalled == count, workflow_id
        assert len(await _sent(system_sessionmaker, tenant_id, "waitlist_offer")) == 1
        assert len(await _sent(system_sessionmaker, tenant_id, "appointment_cancelled")) == 1
        assert "waitlist_offer" in await templates_sent(system_sessionmaker, tenant_id, waiting.id)

        async def message_sent() -> str | None:
            resp = await client.get(f"{API}/communications/{message.json()['id']}", headers=auth)
            return resp.json()["status"] if resp.json()["status"] in ("sent", "delivered") else None

        await eventually(message_sent, "the message sent", within=30)
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await env.shutdown()
