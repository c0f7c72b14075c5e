"""A worker killed while it sends an appointment reminder: a new worker sends it within seconds (the
reminder activity heartbeats), and once.

Real worker processes (`python worker.py`) on the Temporal dev server. The reminder is held mid-activity by
the appointment row, which the test locks as a reschedule would, while the worker is killed.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from core.database import bind_tenant
from domain.scheduling.models import Appointment
from domain.scheduling.notifications import reminder_key
from domain.tenants.models import Tenant
from tests.polling import eventually
from tests.scheduling.reminder_support import book_at, messages
from tests.worker_processes import kill, waits_on_a_lock, worker_process


async def test_a_reminder_whose_worker_was_killed_is_sent_by_a_new_worker_within_seconds(
    app: Any,
    client: Any,
    auth: dict,
    settings: Any,
    tenant_id: uuid.UUID,
    dev_env: Any,
    database_url: str,
    system_sessionmaker: Any,
    make_patient: Any,
    make_practitioner: Any,
    monkeypatch: Any,
) -> None:
    queue = f"reminder-crash-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    # setitem on the state's dict: monkeypatch.setattr would delete the attribute on undo (Starlette's State)
    monkeypatch.setitem(app.state._state, "temporal_client", dev_env.client)
    async with system_sessionmaker() as session:  # one reminder, a minute before the appointment
        bind_tenant(session, tenant_id)
        tenant = await session.get(Tenant, tenant_id)
        tenant.settings = {**tenant.settings, "reminder_offsets_minutes": [1]}
        await session.commit()
    patient, practitioner = await make_patient(), await make_practitioner()
    loop = asyncio.get_running_loop()
    async with worker_process(dev_env, database_url, queue, PRM_WORKER_METRICS_PORT="0") as first:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1, seconds=8)
        appointment = await book_at(client, auth, patient, practitioner, start)
        async with system_sessionmaker() as holder:  # the reminder locks this row: it waits for the test
            bind_tenant(holder, tenant_id)
            await holder.execute(
                select(Appointment.id).where(Appointment.id == uuid.UUID(appointment["id"])).with_for_update()
            )
            await eventually(
                lambda: waits_on_a_lock(system_sessionmaker, "%FROM appointments%FOR UPDATE%"),
                "the reminder activity to wait on the appointment",
                within=30,
            )
            await kill(first)
            killed_at = loop.time()
            await holder.rollback()
    key = reminder_key(uuid.UUID(appointment["id"]), 1, start.isoformat())
    async with worker_process(dev_env, database_url, queue, PRM_WORKER_METRICS_PORT="0"):

        async def reminded() -> bool:
            return key in await messages(system_sessionmaker, tenant_id, appointment["id"])

        await eventually(reminded, "the reminder to be sent by the new worker", within=30)
        resumed = loop.time() - killed_at
        await asyncio.sleep(1)
        assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == [key]
        await dev_env.client.get_workflow_handle(f"appointment-{appointment['id']}").terminate("test over")
    assert resumed < 15, f"the reminder was sent {resumed:.1f} s after the kill"
