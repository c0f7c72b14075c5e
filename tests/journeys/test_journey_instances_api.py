"""Journey instances through the API alone, with the real workflow and activities behind it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities import ActivityDeps
from domain.journeys.plan import journey_workflow_id
from domain.tickets.plan import ticket_workflow_id
from tests.journeys.api_support import define, place, stage_statuses, started, statuses_become
from tests.journeys.app_support import Wired, gateway_to, journey_worker
from tests.journeys.conftest import INSTANCES, LEGACY_INSTANCES, Clinic
from tests.journeys.helpers import send
from tests.outbox import commands_for, tenant_relay
from tests.polling import eventually


async def test_post_surgery_recovery_runs_through_the_api(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_time_skipping: Wired
) -> None:
    journey_id = await define(client, auth)
    instance = await started(client, auth, journey_id, clinic.patient_id)
    iid = instance["id"]
    assert instance["status"] == "active" and instance["workflow_id"] == f"journey-instance-{iid}"

    # Day 0: the welcome goes out at once; the day-1 stage waits on its timer.
    await eventually(statuses_become(client, auth, iid, ["completed", "active", "pending", "pending"]))

    async def welcome_sent() -> list:  # its delivery workflow sends it moments after the stage records it
        messages = await clinic.communications(iid)
        return messages if [m.status for m in messages] == ["sent"] else []

    (welcome,) = await eventually(welcome_sent, "the welcome to be sent")
    assert (welcome.channel, welcome.template_name) == ("whatsapp", "post_op_welcome")
    assert welcome.message.startswith("Hi Maria, welcome home")

    # A day later the check-in goes out and the manual stage waits for the coordinator.
    await on_time_skipping.env.sleep(timedelta(days=1, minutes=1))
    await eventually(statuses_become(client, auth, iid, ["completed", "completed", "active", "pending"]))
    assert [m.template_name for m in await clinic.communications(iid)] == [
        "post_op_welcome",
        "recovery_check_in",
    ]
    detail = (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()
    assert detail["journey_name"] == "Post-Surgery Recovery"
    assert all(s["started_at"] and s["completed_at"] for s in detail["stages"][:2])

    # The coordinator calls the patient and advances; the journey now waits for the patient's reply.
    resp = await client.post(
        f"{INSTANCES}/{iid}/advance", json={"notes": "Called, recovering well"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "active"
    stages = (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["stages"]
    assert [s["status"] for s in stages] == ["completed", "completed", "completed", "active"]
    assert stages[2]["notes"] == "Called, recovering well"

    # Advancing a reply-driven stage is refused.
    refused = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert refused.status_code == 409 and "not manual" in refused.json()["detail"]

    # No reply within two days: a ticket for the team, and the journey completes.
    await on_time_skipping.env.sleep(timedelta(days=2, minutes=1))
    await eventually(statuses_become(client, auth, iid, ["completed", "completed", "completed", "skipped"]))
    (ticket,) = await clinic.tickets(iid)
    assert (ticket.title, ticket.category, ticket.patient_id) == (
        "No reply after surgery check-in",
        "post_op",
        clinic.patient_id,
    )
    # The ticket's SLA workflow was started by the command its opening recorded (no reconciler).
    sla_start, *_ = await commands_for(clinic.sessionmaker, ticket_workflow_id(ticket.id))
    assert (sla_start.kind, sla_start.outcome) == ("start", "delivered")
    assert ticket.response_due_at is not None and ticket.resolution_due_at is not None
    assert await clinic.opened_priority(ticket) == "high"

    async def completed() -> bool:
        return (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["status"] == "completed"

    await eventually(completed)
    again = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert again.status_code == 409 and "completed" in again.json()["detail"]
    assert len(await clinic.communications(iid)) == 2


MANUAL_THEN_DONE = {
    "name": "Two calls",
    "stages": [
        {"name": "Welcome", "order_index": 1, "actions": [send()]},
        {"name": "First call", "order_index": 2, "trigger_event": "manual"},
        {"name": "Second call", "order_index": 3, "trigger_event": "manual"},
    ],
}


async def test_advance_completes_manual_stages_then_409_when_completed(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid = (await started(client, auth, await define(client, auth, MANUAL_THEN_DONE), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, ["completed", "active", "pending"]))
    first = await client.post(f"{INSTANCES}/{iid}/advance", json={"notes": "done"}, headers=auth)
    assert first.status_code == 200, first.text
    assert await stage_statuses(client, auth, iid) == ["completed", "completed", "active"]
    last = await client.post(f"{LEGACY_INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert last.status_code == 200, last.text
    assert last.json()["status"] == "completed" and last.json()["completed_at"]
    refused = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert refused.status_code == 409 and "completed" in refused.json()["detail"]


async def test_advancing_a_stage_that_waits_on_a_timer_is_409(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    body = {
        "name": "Later",
        "stages": [
            {"name": "Wait", "order_index": 1, "trigger_event": {"type": "delay", "delay": {"hours": 1}}}
        ],
    }
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, ["active"]))
    resp = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert resp.status_code == 409
    assert "not manual" in resp.json()["detail"]
    await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)


async def test_cancel_stops_the_journey_for_good(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    body = {
        "name": "Drip",
        "stages": [
            {"name": "Now", "order_index": 1, "actions": [send()]},
            {
                "name": "Soon",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"seconds": 2}},
                "actions": [send("recovery_check_in")],
            },
        ],
    }
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, ["completed", "active"]))
    resp = await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled" and resp.json()["cancelled_at"]
    handle = on_dev_server.env.client.get_workflow_handle(journey_workflow_id(iid))

    async def workflow_cancelled() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await eventually(workflow_cancelled)
    assert await stage_statuses(client, auth, iid) == ["completed", "skipped"]
    import asyncio

    await asyncio.sleep(2.5)  # past the cancelled timer
    assert len(await clinic.communications(iid)) == 1
    again = await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    advance = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
    assert advance.status_code == 409 and "cancelled" in advance.json()["detail"]


async def test_cancelling_a_completed_instance_is_409(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    body = {"name": "Quick", "stages": [{"name": "Now", "order_index": 1, "actions": [send()]}]}
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]

    async def completed() -> bool:
        return (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["status"] == "completed"

    await eventually(completed)
    assert (await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)).status_code == 409


async def test_same_idempotency_key_creates_and_starts_one_instance(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    journey_id = await define(
        client, auth, {"name": "Once", "stages": [{"name": "Now", "order_index": 1, "actions": [send()]}]}
    )
    key = f"place-{uuid.uuid4()}"
    first = await place(client, auth, journey_id, clinic.patient_id, key)
    second = await place(client, auth, journey_id, clinic.patient_id, key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert await clinic.count_instances() == 1
    iid = first.json()["id"]

    async def one_message() -> bool:
        return len(await clinic.communications(iid)) == 1

    await eventually(one_message)
    runs = [
        w async for w in on_dev_server.env.client.list_workflows(f"WorkflowId = '{journey_workflow_id(iid)}'")
    ]
    assert len(runs) <= 1  # visibility may lag; the once-ever id is what guarantees a single workflow
    (start_command,) = await commands_for(clinic.sessionmaker, journey_workflow_id(iid))  # one start recorded
    assert (start_command.kind, start_command.outcome) == ("start", "delivered")
    assert start_command.delivered_at is not None


async def test_other_tenant_gets_404_on_every_instance_endpoint(
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    on_dev_server: Wired,
    make_tenant: Callable,
    headers_for: Callable,
) -> None:
    body = {"name": "Mine", "stages": [{"name": "Call", "order_index": 1, "trigger_event": "manual"}]}
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
    other = headers_for(await make_tenant())
    for base in (INSTANCES, LEGACY_INSTANCES):
        assert (await client.get(f"{base}/{iid}", headers=other)).status_code == 404
        assert (await client.post(f"{base}/{iid}/advance", json={}, headers=other)).status_code == 404
        assert (await client.post(f"{base}/{iid}/cancel", headers=other)).status_code == 404
        assert (await client.get(base, headers=other)).json()["total"] == 0
        assert (await client.get(f"{base}/stats", headers=other)).json()["total"] == 0
    placed = await place(
        client,
        other,
        (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["journey_id"],
        clinic.patient_id,
    )
    assert placed.status_code == 404
    assert (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["status"] == "active"
    await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)


async def test_list_filters_and_stats_by_journey_name(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    calls = await define(
        client,
        auth,
        {"name": "Calls", "stages": [{"name": "Call", "order_index": 1, "trigger_event": "manual"}]},
    )
    quick = await define(client, auth, {"name": "Quick", "stages": []})
    a = (await started(client, auth, calls, clinic.patient_id))["id"]
    other_patient = await clinic.add_patient(phone_primary="+14155550777")
    await started(client, auth, quick, other_patient)
    await started(client, auth, calls, other_patient)
    cancelled = await client.post(f"{INSTANCES}/{a}/cancel", headers=auth)
    assert cancelled.status_code == 200

    async def quick_completed() -> bool:
        return (await client.get(INSTANCES, params={"journey_id": quick}, headers=auth)).json()["items"][0][
            "status"
        ] == "completed"

    await eventually(quick_completed)
    mine = (await client.get(INSTANCES, params={"patient_id": str(clinic.patient_id)}, headers=auth)).json()
    assert [i["id"] for i in mine["items"]] == [a]
    active = (await client.get(LEGACY_INSTANCES, params={"status": "active"}, headers=auth)).json()
    assert active["total"] == 1
    stats = (await client.get(f"{INSTANCES}/stats", headers=auth)).json()
    assert set(stats) == {"total", "active", "completed", "cancelled", "by_status", "by_journey"}
    assert (stats["total"], stats["active"], stats["completed"], stats["cancelled"]) == (3, 1, 1, 1)
    assert stats["by_journey"] == {"Calls": 2, "Quick": 1}
    only_calls = (await client.get(f"{INSTANCES}/stats", params={"journey_id": calls}, headers=auth)).json()
    assert only_calls["by_journey"] == {"Calls": 2}
    for item in active["items"]:
        await client.post(f"{INSTANCES}/{item['id']}/cancel", headers=auth)


@contextlib.contextmanager
def temporal_down(app: Any, wired: Wired) -> Iterator[None]:
    """The API's Temporal unreachable (no client, an address nobody listens on) until the block ends."""
    up = app.state.temporal_client
    app.state.temporal_client = None
    app.state.settings = app.state.settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    try:
        yield
    finally:
        app.state.temporal_client = up
        app.state.settings = wired.settings


async def test_temporal_down_the_instance_is_created_and_its_workflow_starts_once_temporal_is_back(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    on_dev_server: Wired,
    activity_deps: ActivityDeps,
) -> None:
    journey_id = await define(
        client, auth, {"name": "Later", "stages": [{"name": "Now", "order_index": 1, "actions": [send()]}]}
    )
    with temporal_down(app, on_dev_server):
        resp = await place(client, auth, journey_id, clinic.patient_id)
    assert resp.status_code == 201, resp.text  # the instance and its start are saved together
    iid = resp.json()["id"]
    workflow_id = journey_workflow_id(iid)
    assert (await clinic.instance(iid)).status == "active"
    (pending,) = await commands_for(clinic.sessionmaker, workflow_id)
    assert (pending.kind, pending.delivered_at, pending.attempts) == ("start", None, 1)
    with pytest.raises(RPCError):  # not on Temporal
        await on_dev_server.env.client.get_workflow_handle(workflow_id).describe()

    relay = tenant_relay(
        activity_deps.sessionmaker,
        clinic.tenant_id,
        gateway_to(on_dev_server.env.client, on_dev_server.task_queue),
    )
    await relay()  # Temporal is back: the relay's round delivers the start

    (delivered,) = await commands_for(clinic.sessionmaker, workflow_id)
    assert delivered.outcome == "delivered" and delivered.delivered_at is not None

    async def sent() -> bool:
        return len(await clinic.communications(iid)) == 1

    await eventually(sent)
    await relay()  # a second round delivers nothing again
    (after,) = await commands_for(clinic.sessionmaker, workflow_id)
    assert (after.delivered_at, after.outcome) == (delivered.delivered_at, "delivered")
    assert len(await clinic.communications(iid)) == 1
    assert await clinic.count_instances() == 1


async def test_temporal_down_cancel_is_saved_and_reaches_the_workflow_later_but_advance_is_503(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    on_dev_server: Wired,
    activity_deps: ActivityDeps,
) -> None:
    body = {"name": "Calls", "stages": [{"name": "Call", "order_index": 1, "trigger_event": "manual"}]}
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, ["active"]))
    workflow_id = journey_workflow_id(iid)
    handle = on_dev_server.env.client.get_workflow_handle(workflow_id)

    with temporal_down(app, on_dev_server):
        advance = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
        cancel = await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)
    assert advance.status_code == 503, advance.text  # an advance needs the workflow's answer now
    assert "Temporal" in advance.json()["detail"]
    assert cancel.status_code == 200, cancel.text  # a cancellation is saved, and sent when it can be
    assert cancel.json()["status"] == "cancelled" and cancel.json()["cancelled_at"]
    assert await stage_statuses(client, auth, iid) == ["skipped"]
    start, pending = await commands_for(clinic.sessionmaker, workflow_id)
    assert (start.kind, start.outcome) == ("start", "delivered")
    assert (pending.kind, pending.delivered_at) == ("cancel", None)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    relay = tenant_relay(
        activity_deps.sessionmaker,
        clinic.tenant_id,
        gateway_to(on_dev_server.env.client, on_dev_server.task_queue),
    )
    await relay()  # Temporal is back: the relay delivers the cancellation

    async def workflow_cancelled() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await eventually(workflow_cancelled)
    _, cancel_command = await commands_for(clinic.sessionmaker, workflow_id)
    assert cancel_command.outcome == "delivered" and cancel_command.delivered_at is not None
    await relay()  # delivered once: a second round sends nothing
    assert [c.delivered_at for c in await commands_for(clinic.sessionmaker, workflow_id)] == [
        start.delivered_at,
        cancel_command.delivered_at,
    ]
    assert (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["status"] == "cancelled"


async def test_advance_and_cancel_work_after_the_api_and_worker_restart(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    on_dev_server: Wired,
    activity_deps: ActivityDeps,
) -> None:
    body = {
        "name": "Restart",
        "stages": [
            {"name": "Call", "order_index": 1, "trigger_event": "manual"},
            {"name": "Call 2", "order_index": 2, "trigger_event": "manual"},
        ],
    }
    iid = (await started(client, auth, await define(client, auth, body), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, ["active", "pending"]))
    # A new API process: a fresh client that knows nothing but the server's address.
    target = on_dev_server.env.client.service_client.config.target_host
    app.state.temporal_client = await Client.connect(target, namespace=on_dev_server.env.client.namespace)
    # A second worker on the same queue (as after a worker restart) takes over the workflow's next tasks.
    async with journey_worker(app.state.temporal_client, activity_deps, on_dev_server.task_queue):
        advanced = await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)
        assert advanced.status_code == 200, advanced.text
        assert await stage_statuses(client, auth, iid) == ["completed", "active"]
        cancelled = await client.post(f"{INSTANCES}/{iid}/cancel", headers=auth)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
