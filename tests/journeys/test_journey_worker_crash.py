"""A worker killed mid-journey: a new worker picks the journey up and every message goes out exactly once."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from tests.journeys.conftest import INSTANCES, Clinic
from tests.journeys.helpers import send
from tests.journeys.test_journey_instances_api import define, started, statuses_become
from tests.polling import eventually
from tests.worker_processes import worker_process


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
