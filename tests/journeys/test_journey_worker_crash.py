"""A worker killed mid-journey: a new worker picks the journey up and every message goes out exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.communications.models import Communication
from domain.journeys.plan import action_idempotency_key
from tests.journeys.api_support import define, started, statuses_become
from tests.journeys.conftest import INSTANCES, Clinic
from tests.journeys.helpers import send
from tests.polling import eventually
from tests.worker_processes import kill, waits_on_a_lock, worker_process


async def test_killed_worker_resumes_on_a_new_worker_with_one_message_per_send(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    dev_env: WorkflowEnvironment,
    database_url: str,
) -> None:
    task_queue = f"crash-{os.getpid()}-{clinic.tenant_id.hex[:8]}"
    saved = (app.state.settings, app.state.temporal_client)
    app.state.settings = app.state.settings.model_copy(update={"temporal_task_queue": task_queue})
    app.state.temporal_client = dev_env.client
    body = {
        "name": "Crash course",
        "stages": [
            {"name": "Now", "order_index": 1, "actions": [send()]},
            {
                "name": "Soon",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"seconds": 3}},
                "actions": [send("recovery_check_in")],
            },
            {
                "name": "Later",
                "order_index": 3,
                "trigger_event": {"type": "delay", "delay": {"seconds": 1}},
                "actions": [send("general_message", variables={"message": "all done"})],
            },
        ],
    }
    try:
        async with worker_process(dev_env, database_url, task_queue) as first:
            iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
            await eventually(
                statuses_become(client, auth, iid, ["completed", "active", "pending"]), within=60
            )
            first.send_signal(signal.SIGKILL)  # no graceful shutdown: as if the machine died
            await first.wait()
        assert len(await clinic.communications(iid)) == 1
        async with worker_process(dev_env, database_url, task_queue):

            async def completed() -> bool:
                return (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["status"] == "completed"

            await eventually(completed, within=60)
        messages = await clinic.communications(iid)
        assert [m.template_name for m in messages] == [
            "post_op_welcome",
            "recovery_check_in",
            "general_message",
        ]
        assert len({m.idempotency_key for m in messages}) == 3
    finally:
        app.state.settings, app.state.temporal_client = saved


async def test_a_killed_workers_journey_action_is_retried_within_seconds(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    dev_env: WorkflowEnvironment,
    database_url: str,
    system_sessionmaker: Any,
) -> None:
    """The worker dies while a stage's send action runs (held by a row lock of the test's): the action
    heartbeats, so a new worker retries it once the 5 s heartbeat timeout passes, not after the 30 s
    start-to-close timeout."""
    task_queue = f"crash-action-{clinic.tenant_id.hex[:8]}"
    saved = (app.state.settings, app.state.temporal_client)
    app.state.settings = app.state.settings.model_copy(update={"temporal_task_queue": task_queue})
    app.state.temporal_client = dev_env.client
    body = {
        "name": "Crash mid-action",
        "stages": [
            {
                "name": "Soon",
                "order_index": 1,
                "trigger_event": {"type": "delay", "delay": {"seconds": 2}},
                "actions": [send(channel="sms")],
            }
        ],
    }
    loop = asyncio.get_running_loop()
    try:
        async with worker_process(dev_env, database_url, task_queue, PRM_WORKER_METRICS_PORT="0") as first:
            iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
            key = action_idempotency_key(iid, 1, 0)
            async with (
                await clinic.session() as holder
            ):  # the same key, uncommitted: the action's insert waits
                holder.add(
                    Communication(
                        patient_id=clinic.patient_id,
                        channel="sms",
                        message="",
                        status="queued",
                        idempotency_key=key,
                    )
                )
                await holder.flush()
                await eventually(
                    lambda: waits_on_a_lock(system_sessionmaker, "INSERT INTO communications%"),
                    "the send action to wait on the key",
                    within=30,
                )
                await kill(first)
                killed_at = loop.time()
                await holder.rollback()
        async with worker_process(dev_env, database_url, task_queue, PRM_WORKER_METRICS_PORT="0"):

            async def sent() -> bool:
                return [m.idempotency_key for m in await clinic.communications(iid)] == [key]

            await eventually(sent, "the action to run again on the new worker", within=30)
            resumed = loop.time() - killed_at
            await eventually(statuses_become(client, auth, iid, ["completed"]), within=15)
        assert resumed < 15, f"the action resumed {resumed:.1f} s after the kill"
    finally:
        app.state.settings, app.state.temporal_client = saved
