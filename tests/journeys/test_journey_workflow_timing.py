"""The journey workflow with real activities on the time-skipping server: days pass in milliseconds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from core.gateway import search_attributes
from domain.journeys.plan import ReplyReceived
from tests.journeys.app_support import journey_worker
from tests.journeys.conftest import Clinic
from tests.journeys.helpers import create_instance, send, start
from tests.polling import eventually


async def test_three_day_delay_runs_the_stage_three_days_after_the_previous_one(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    instance = await create_instance(
        clinic,
        [
            {"name": "Welcome", "order_index": 1, "trigger_event": "immediate", "actions": [send()]},
            {
                "name": "Day 3",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"days": 3}},
                "actions": [send("recovery_check_in")],
            },
        ],
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-delay") as _:
        handle = await start(temporal_env.client, "ts-delay", instance)
        assert await handle.result() == "completed"
    first, second = await clinic.stages(instance.id)
    assert (first.status, second.status) == ("completed", "completed")
    assert second.completed_at is not None and first.completed_at is not None
    assert timedelta(days=3) <= second.completed_at - first.completed_at < timedelta(days=3, minutes=1)
    messages = await clinic.communications(instance.id)
    assert [m.template_name for m in messages] == ["post_op_welcome", "recovery_check_in"]
    assert messages[0].message.startswith("Hi Maria, welcome home")
    assert (messages[0].channel, messages[0].provider, messages[0].status) == ("whatsapp", "outbox", "sent")
    row = await clinic.instance(instance.id)
    assert row.status == "completed" and row.completed_at is not None


async def test_stage_runs_24_hours_before_the_appointment(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    appointment_at = (await temporal_env.get_current_time()).replace(microsecond=0) + timedelta(days=5)
    appointment_id = await clinic.add_appointment(appointment_at)
    instance = await create_instance(
        clinic,
        [
            {
                "name": "Day-before reminder",
                "order_index": 1,
                "trigger_event": {"type": "before_appointment", "offset": {"hours": 24}},
                "actions": [send("apt_reminder", channel="sms")],
            }
        ],
        appointment_id=appointment_id,
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-appt"):
        handle = await start(temporal_env.client, "ts-appt", instance)
        assert await handle.result() == "completed"
    (stage,) = await clinic.stages(instance.id)
    assert stage.completed_at is not None
    assert abs(stage.completed_at - (appointment_at - timedelta(hours=24))) < timedelta(minutes=1)
    (message,) = await clinic.communications(instance.id)
    assert "Dr. John Smith" in message.message and message.channel == "sms"


async def test_appointment_stage_without_an_appointment_is_skipped(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    instance = await create_instance(
        clinic,
        [
            {
                "name": "Follow-up",
                "order_index": 1,
                "trigger_event": {"type": "after_appointment", "offset": {"days": 1}},
                "actions": [send("feedback_request")],
            }
        ],
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-noappt"):
        assert await (await start(temporal_env.client, "ts-noappt", instance)).result() == "completed"
    (stage,) = await clinic.stages(instance.id)
    assert stage.status == "skipped" and "no appointment" in (stage.notes or "")
    assert await clinic.communications(instance.id) == []


REPLY_STAGES = [
    {
        "name": "Check-in",
        "order_index": 1,
        "trigger_event": "immediate",
        "actions": [send("recovery_check_in")],
    },
    {
        "name": "Reply",
        "order_index": 2,
        "trigger_event": {
            "type": "reply_received",
            "timeout": {"days": 2},
            "on_timeout": "create_ticket",
            "ticket": {"title": "No reply to recovery check-in", "priority": "high", "category": "post_op"},
        },
        "actions": [send("general_message", variables={"message": "thanks for your reply!"})],
    },
]


async def test_no_reply_within_two_days_creates_one_ticket_and_skips_the_stage(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    instance = await create_instance(clinic, REPLY_STAGES)
    async with journey_worker(temporal_env.client, activity_deps, "ts-reply-timeout"):
        assert await (await start(temporal_env.client, "ts-reply-timeout", instance)).result() == "completed"
    (ticket,) = await clinic.tickets(instance.id)
    assert (ticket.title, await clinic.opened_priority(ticket), ticket.category) == (
        "No reply to recovery check-in",
        "high",
        "post_op",
    )
    assert ticket.patient_id == clinic.patient_id
    assert ticket.idempotency_key == f"journey:{instance.id}:2:reply-timeout"
    _, reply = await clinic.stages(instance.id)
    assert reply.status == "skipped" and "No reply within 2 days" in (reply.notes or "")
    assert len(await clinic.communications(instance.id)) == 1


async def test_a_reply_runs_the_stage_and_creates_no_ticket(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    instance = await create_instance(clinic, REPLY_STAGES)
    async with journey_worker(temporal_env.client, activity_deps, "ts-reply"):
        handle = await start(temporal_env.client, "ts-reply", instance)
        await eventually(lambda: _stage_is(clinic, instance.id, 2, "active"))
        await handle.signal("reply_received", ReplyReceived())
        assert await handle.result() == "completed"
    assert await clinic.tickets(instance.id) == []
    assert await clinic.stage_statuses(instance.id) == ["completed", "completed"]
    assert len(await clinic.communications(instance.id)) == 2


async def test_a_failing_action_fails_the_stage_and_the_instance(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    no_email = await clinic.add_patient(phone_primary="+14155550999")
    instance = await create_instance(
        clinic,
        [
            {"name": "Mail", "order_index": 1, "actions": [send("feedback_request", channel="email")]},
            {"name": "Never", "order_index": 2, "actions": [send()]},
        ],
        patient_id=no_email,
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-fail"):
        assert await (await start(temporal_env.client, "ts-fail", instance)).result() == "failed"
    first, second = await clinic.stages(instance.id)
    assert first.status == "failed" and "no email address" in (first.notes or "")
    assert second.status == "pending"
    assert (await clinic.instance(instance.id)).status == "failed"


async def test_scheduled_reminder_is_sent_before_the_appointment_and_the_journey_waits_for_it(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    appointment_id = await clinic.add_appointment(await temporal_env.get_current_time() + timedelta(days=3))
    reminder = {
        "type": "schedule_reminder",
        "before_appointment": {"hours": 2},
        "template_id": "apt_reminder",
    }
    instance = await create_instance(
        clinic,
        [{"name": "Book", "order_index": 1, "actions": [send("apt_confirmation"), reminder]}],
        appointment_id=appointment_id,
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-reminder"):
        assert await (await start(temporal_env.client, "ts-reminder", instance)).result() == "completed"
    messages = await clinic.communications(instance.id)
    assert [m.template_name for m in messages] == ["apt_confirmation", "apt_reminder"]


async def _stage_is(clinic: Clinic, instance_id: object, order_index: int, status: str) -> bool:
    stages = {s.order_index: s.status for s in await clinic.stages(instance_id)}  # type: ignore[arg-type]
    await asyncio.sleep(0)
    return stages.get(order_index) == status


async def test_continue_as_new_carries_the_journey_on_without_repeating_a_stage(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    """A long journey hands over to a fresh run between stages; progress, delays and sends carry over."""
    from dataclasses import replace

    from temporalio.api.enums.v1 import EventType

    from domain.journeys import service
    from domain.journeys.plan import WORKFLOW_NAME, journey_workflow_id, workflow_input_for

    instance = await create_instance(
        clinic,
        [
            {"name": "Welcome", "order_index": 1, "trigger_event": "immediate", "actions": [send()]},
            {
                "name": "Day 1",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"days": 1}},
                "actions": [send("recovery_check_in")],
            },
            {"name": "Closing", "order_index": 3, "trigger_event": "immediate", "actions": []},
        ],
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-can") as _:
        handle = await temporal_env.client.start_workflow(
            WORKFLOW_NAME,
            replace(workflow_input_for(instance), stages_per_run=1),
            id=journey_workflow_id(instance.id),
            task_queue="ts-can",
            search_attributes=search_attributes(service.workflow_start(instance).search_attributes),
        )
        assert await handle.result() == "completed"
        first_run = temporal_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        history = await first_run.fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    stages = await clinic.stages(instance.id)
    assert [s.status for s in stages] == ["completed", "completed", "completed"]
    assert stages[1].completed_at is not None and stages[0].completed_at is not None
    assert timedelta(days=1) <= stages[1].completed_at - stages[0].completed_at < timedelta(days=1, minutes=1)
    messages = await clinic.communications(instance.id)
    assert [m.template_name for m in messages] == ["post_op_welcome", "recovery_check_in"]
    assert (await clinic.instance(instance.id)).status == "completed"


async def test_a_journey_message_due_at_2230_waits_for_the_end_of_quiet_hours(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    """Journey messages pass the same send policy as every message: the journey goes on, the message waits."""
    await clinic.set_settings(quiet_hours={"enabled": True, "start": "21:00", "end": "08:00"})
    now = await temporal_env.get_current_time()
    at_2230 = now.replace(hour=22, minute=30, second=0, microsecond=0)
    if at_2230 <= now:
        at_2230 += timedelta(days=1)
    await temporal_env.sleep(at_2230 - now)
    instance = await create_instance(
        clinic,
        [{"name": "Check-in", "order_index": 1, "actions": [send("recovery_check_in", channel="sms")]}],
    )
    async with journey_worker(temporal_env.client, activity_deps, "ts-quiet"):
        assert await (await start(temporal_env.client, "ts-quiet", instance)).result() == "completed"

        async def deferred() -> Any:
            (message,) = await clinic.communications(instance.id)
            return message if message.status == "scheduled" else None

        message = await eventually(deferred, "the message to wait for quiet hours to end")
        assert message.meta_data["policy"] == "quiet hours" and message.sent_at is None
        delivery = temporal_env.client.get_workflow_handle(f"communication-{message.id}")
        async with temporal_env.time_skipping_unlocked():
            assert (await delivery.result())["status"] == "sent"
    (message,) = await clinic.communications(instance.id)
    eight = (at_2230 + timedelta(days=1)).replace(hour=8, minute=0)
    assert eight <= message.sent_at < eight + timedelta(minutes=1)
    assert message.meta_data["policy"] == "allowed" and not message.is_urgent
