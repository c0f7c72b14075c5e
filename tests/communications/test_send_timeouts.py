"""The send step's timeouts are sized to the provider call: a provider that hangs is given up on after the
HTTP timeout, and a worker that dies mid-send is noticed by the heartbeat timeout; either way the retry
comes within seconds and the message goes out once.

Durations are read from the workflow's history (the Temporal server's clock), never from the wall clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities import ActivityDeps
from activities.communications import CommunicationActivities
from core.database import bind_tenant
from domain.communications.models import Communication
from domain.communications.plan import SendInput
from tests.communications.support import gateway_to, record_sms, set_tenant
from workflows.communications import SEND_TIMEOUT, CommunicationDeliveryWorkflow


async def _delivered(env, communication_id: uuid.UUID) -> WorkflowHandle:
    handle = env.client.get_workflow_handle(f"communication-{communication_id}")
    async with env.time_skipping_unlocked():
        result = await handle.result()
    assert result["status"] == "sent", result
    return handle


async def _send_activity(handle: WorkflowHandle) -> tuple[int, timedelta]:
    """(the attempt that completed, server time from scheduling the send to its completion)."""
    history = await handle.fetch_history()
    scheduled_id, scheduled_at, attempt, completed_at = None, None, 0, None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name == "communication_send":
                scheduled_id, scheduled_at = event.event_id, event.event_time.ToDatetime()
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id == scheduled_id:
                attempt = started.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            if event.activity_task_completed_event_attributes.scheduled_event_id == scheduled_id:
                completed_at = event.event_time.ToDatetime()
    assert scheduled_at is not None and completed_at is not None
    return attempt, completed_at - scheduled_at


async def _message(system_sessionmaker, tenant_id, communication_id) -> Communication:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.get(Communication, communication_id)


async def test_a_provider_that_hangs_is_given_up_on_and_the_retry_sends_the_message_once(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
    monkeypatch,
) -> None:
    """A timed-out call leaves its attempt in doubt (Twilio may have taken the message): the retry waits for
    Twilio's word, and sends again once the resolution window passes without one. No window here: the
    time-skipping server skips the retries' back-off, which a window of wall-clock seconds would outlast
    (tests/communications/test_send_once.py covers the window)."""
    monkeypatch.setattr(settings, "provider_timeout_seconds", 0.5)
    monkeypatch.setattr(settings, "send_resolve_seconds", 0.0)
    providers_configured.twilio_hangs.append(3.0)  # then the connection closes: nothing was accepted
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    patient = await make_patient()
    gateway = gateway_to(temporal_env, settings)
    communication_id = await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway)

    handle = await _delivered(temporal_env, communication_id)
    attempt, took = await _send_activity(handle)
    assert attempt == 2
    assert took < timedelta(seconds=15), took  # the HTTP timeout, then the retry's 5 s back-off
    message = await _message(system_sessionmaker, tenant_id, communication_id)
    assert len(providers_configured.twilio_forms()) == 2  # the hung call and the retry
    assert providers_configured.twilio_accepted == [message.provider_message_id]
    assert message.status == "sent"


async def test_a_send_whose_worker_died_is_retried_after_the_heartbeat_timeout(
    temporal_env,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
    monkeypatch,
) -> None:
    """The first attempt neither answers nor heartbeats, as when its worker dies mid-send: the server
    retries it once the heartbeat timeout passes, long before the start-to-close timeout."""
    queue = f"communications-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    steps = CommunicationActivities(ActivityDeps(settings=settings, sessionmaker=system_sessionmaker))

    @activity.defn(name="communication_send")
    async def send_on_a_worker_that_dies_once(data: SendInput) -> str:
        if activity.info().attempt == 1:
            await asyncio.Event().wait()  # silence until the worker shuts down
        return await steps.send(data)

    others = [steps.plan, steps.check_policy, steps.fallback, steps.mark_failed]
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    patient = await make_patient()
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[CommunicationDeliveryWorkflow],
        activities=[*others, send_on_a_worker_that_dies_once],
    ):
        communication_id = await record_sms(
            system_sessionmaker, tenant_id, patient, gateway=gateway_to(temporal_env, settings)
        )
        handle = await _delivered(temporal_env, communication_id)
    attempt, took = await _send_activity(handle)
    assert attempt == 2
    # The heartbeat timeout (5 s) and the 5 s back-off; the start-to-close timeout alone would take longer.
    assert took < SEND_TIMEOUT, took
    message = await _message(system_sessionmaker, tenant_id, communication_id)
    assert message.status == "sent"
    assert providers_configured.twilio_accepted == [message.provider_message_id]
