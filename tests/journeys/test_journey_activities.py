"""Journey activities on their own: a retried activity never sends or files twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from domain.communications.plan import delivery_workflow_id
from domain.communications.providers import OutboxProvider, provider_for
from domain.communications.templates import (
    BUILTIN_TEMPLATES,
    CATEGORIES,
    SYSTEM_VARIABLES,
    required_variables,
)
from domain.enums import Channel
from domain.journeys.plan import ActionInput, StageStatusInput
from domain.tickets.plan import WORKFLOW_NAME as TICKET_WORKFLOW
from domain.tickets.plan import ticket_workflow_id
from tests.journeys.app_support import journey_worker
from tests.journeys.conftest import Clinic
from tests.journeys.helpers import activity_env, create_instance, send
from tests.outbox import commands_for

TICKET = {"type": "create_ticket", "title": "Call the patient", "priority": "urgent", "category": "post_op"}


async def test_retried_send_activity_records_once_and_sends_once_without_a_delivery_workflow(
    activity_deps: ActivityDeps, clinic: Clinic, temporal_env: WorkflowEnvironment
) -> None:
    """A message the send policy lets go now, with no fallback to watch, goes from the journey's activity
    itself; the retry finds it sent and sends nothing more."""
    instance = await create_instance(clinic, [{"name": "Now", "order_index": 1, "actions": [send()]}])
    activities, env = JourneyActivities(activity_deps), activity_env(temporal_env.client)
    data = ActionInput(str(clinic.tenant_id), str(instance.id), 1, 0, datetime.now(UTC).isoformat())
    first = await env.run(activities.send_journey_message, data)
    (message,) = await clinic.communications(instance.id)
    assert message.idempotency_key == f"journey:{instance.id}:1:0"
    assert (message.status, message.provider, message.meta_data["policy"]) == ("sent", "outbox", "allowed")
    assert message.recipient == "+14155550123"
    # Its delivery workflow's start was recorded held with it, and settled once the message went.
    (held,) = await commands_for(clinic.sessionmaker, delivery_workflow_id(message.id))
    assert (held.kind, held.outcome, held.delivered_at is not None) == ("start", "settled", True)
    sent_at, provider_id = message.sent_at, message.provider_message_id
    assert sent_at is not None and provider_id

    assert await env.run(activities.send_journey_message, data) == first == str(message.id)
    (again,) = await clinic.communications(instance.id)
    assert (again.sent_at, again.provider_message_id) == (sent_at, provider_id)
    with pytest.raises(RPCError):  # no workflow was needed
        await temporal_env.client.get_workflow_handle(f"communication-{message.id}").describe()
    assert [c.outcome for c in await commands_for(clinic.sessionmaker, delivery_workflow_id(message.id))] == [
        "settled"
    ]


async def test_a_message_that_must_wait_gets_its_delivery_workflow(
    activity_deps: ActivityDeps, clinic: Clinic, temporal_env: WorkflowEnvironment
) -> None:
    """In quiet hours the activity records the wait and hands the message to its delivery workflow, which
    sleeps it out on a durable timer and sends it once."""
    await clinic.set_settings(quiet_hours={"enabled": True, "start": "21:00", "end": "08:00"})
    instance = await create_instance(clinic, [{"name": "Now", "order_index": 1, "actions": [send()]}])
    activities, env = JourneyActivities(activity_deps), activity_env(temporal_env.client)
    late = datetime.now(UTC).replace(hour=22, minute=30)
    data = ActionInput(str(clinic.tenant_id), str(instance.id), 1, 0, late.isoformat())
    await env.run(activities.send_journey_message, data)
    await env.run(activities.send_journey_message, data)  # a retry starts nothing twice
    (message,) = await clinic.communications(instance.id)
    assert (message.status, message.meta_data["policy"], message.sent_at) == (
        "scheduled",
        "quiet hours",
        None,
    )
    assert message.scheduled_for == (late + timedelta(days=1)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    handle = temporal_env.client.get_workflow_handle(f"communication-{message.id}")
    assert (await handle.describe()).task_queue == env.info.task_queue
    # The held start was released and delivered after the commit, once for the two attempts.
    (start,) = await commands_for(clinic.sessionmaker, delivery_workflow_id(message.id))
    assert (start.kind, start.outcome) == ("start", "delivered")
    async with journey_worker(temporal_env.client, activity_deps, env.info.task_queue):
        async with temporal_env.time_skipping_unlocked():
            result = await handle.result()
    (message,) = await clinic.communications(instance.id)
    assert (result["status"], message.status, message.provider) == ("sent", "sent", "outbox")


async def test_retried_ticket_activity_files_once_and_starts_its_sla_workflow_once(
    activity_deps: ActivityDeps, clinic: Clinic, temporal_env: WorkflowEnvironment
) -> None:
    instance = await create_instance(clinic, [{"name": "Now", "order_index": 1, "actions": [TICKET]}])
    activities, env = JourneyActivities(activity_deps), activity_env(temporal_env.client)
    data = ActionInput(str(clinic.tenant_id), str(instance.id), 1, 0)
    assert await env.run(activities.create_journey_ticket, data) == await env.run(
        activities.create_journey_ticket, data
    )
    (ticket,) = await clinic.tickets(instance.id)
    assert (ticket.title, ticket.priority, ticket.category, ticket.status) == (
        "Call the patient",
        "urgent",
        "post_op",
        "open",
    )
    # The ticket's SLA workflow start was recorded with it (once, whatever the retries) and delivered
    # after the activity's commit, on the worker's task queue: no reconciler is needed.
    (start,) = await commands_for(clinic.sessionmaker, ticket_workflow_id(ticket.id))
    assert (start.kind, start.outcome) == ("start", "delivered")
    sla = await temporal_env.client.get_workflow_handle(ticket_workflow_id(ticket.id)).describe()
    assert (sla.workflow_type, sla.task_queue) == (TICKET_WORKFLOW, env.info.task_queue)


async def test_no_message_goes_out_once_the_instance_is_cancelled(
    activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    instance = await create_instance(clinic, [{"name": "Now", "order_index": 1, "actions": [send()]}])
    async with await clinic.session() as session:
        from datetime import UTC, datetime

        from domain.journeys.service import mark_cancelled

        assert await mark_cancelled(session, instance.id, datetime.now(UTC))
        await session.commit()
    activities = JourneyActivities(activity_deps)
    data = ActionInput(str(clinic.tenant_id), str(instance.id), 1, 0)
    assert await ActivityEnvironment().run(activities.send_journey_message, data) is None
    assert await clinic.communications(instance.id) == []
    status = StageStatusInput(
        str(clinic.tenant_id), str(instance.id), 1, "completed", datetime.now(UTC).isoformat()
    )
    await ActivityEnvironment().run(activities.record_stage_status, status)
    assert await clinic.stage_statuses(instance.id) == ["skipped"]


def test_the_template_registry_covers_every_category_and_channel() -> None:
    assert len(BUILTIN_TEMPLATES) >= 9
    assert {t.category for t in BUILTIN_TEMPLATES} == set(CATEGORIES)
    assert {t.channel for t in BUILTIN_TEMPLATES} == set(Channel)
    assert required_variables("lab_results_ready") == {"test_name"}
    assert required_variables("apt_reminder") == set()
    assert {"patient_name", "appointment_date", "clinic_name"} <= SYSTEM_VARIABLES


def test_without_credentials_every_channel_uses_the_outbox(settings) -> None:
    assert all(isinstance(provider_for(channel, settings), OutboxProvider) for channel in Channel)


def test_templates_render_in_a_sandbox_that_refuses_unsafe_access() -> None:
    import pytest

    from domain.communications.templates import TemplateError, render_text

    assert render_text("Hi {{ name }}", {"name": "Ana"}) == "Hi Ana"
    with pytest.raises(TemplateError):
        render_text("{{ x.__class__.__mro__ }}", {"x": ""})
    with pytest.raises(TemplateError):
        render_text("Hi {{ name }}", {})
