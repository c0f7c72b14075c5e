"""Campaigns against the real PostgreSQL and a real (time-skipping) Temporal server: each member enrolled
once through the journeys' own path, skips counted by reason, pause and resume continuing where it stopped,
cancel leaving the unreached members untouched."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from core.database import bind_tenant
from core.gateway import control_queue
from core.workflow_commands import WorkflowCommand
from domain.campaigns.plan import campaign_workflow_id, enrollment_key
from domain.journeys.models import Journey, JourneyInstance
from tests.campaigns.support import (
    API,
    campaign,
    cohort_of_everyone,
    first_of_one_a_minute,
    instances_by_patient,
    launch,
    members,
    result_of,
)
from tests.polling import eventually


async def test_a_campaign_enrols_each_member_once_and_counts_the_skipped_by_reason(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    reached = [await clinic.patient(last_name=f"Reach{i}") for i in range(5)]
    busy = await clinic.patient(last_name="Busy")  # already on the journey: skipped
    await clinic.on_journey(busy, journey)
    inactive = await clinic.patient(last_name="Gone", status="inactive")
    cohort = await cohort_of_everyone(client, auth)

    launched = await launch(client, auth, cohort_id=cohort, journey_id=journey)
    assert launched["status"] == "scheduled"
    assert await result_of(temporal_env, launched["id"]) == "completed"

    done = await campaign(client, auth, launched["id"])
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert done["counts"] == {
        "members": 7,
        "pending": 0,
        "enrolled": 5,
        "sent": 0,
        "skipped": {"already_on_journey": 1, "inactive": 1},
    }
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {
        **{p: 1 for p in reached},
        busy: 1,  # the instance it had, and no second one
    }
    rows = {m.patient_id: m for m in await members(system_sessionmaker, tenant_id, launched["id"])}
    assert rows[inactive].skip_reason == "inactive" and rows[inactive].journey_instance_id is None
    async with (
        system_sessionmaker() as session
    ):  # each enrolled member names its instance, whose workflow ran
        bind_tenant(session, tenant_id)
        for patient in reached:
            instance = await session.get(JourneyInstance, rows[patient].journey_instance_id)
            assert instance is not None and instance.patient_id == patient
            assert instance.idempotency_key == enrollment_key(launched["id"], patient)
            description = await temporal_env.client.get_workflow_handle(instance.workflow_id).describe()
            assert description.status is not None
            assert description.task_queue == temporal_worker.task_queue  # journeys on the main queue
    # The campaign itself ran on the control queue, where its batches never wait behind its journeys.
    handle = temporal_env.client.get_workflow_handle(campaign_workflow_id(launched["id"]))
    assert (await handle.describe()).task_queue == control_queue(temporal_worker.task_queue)


async def test_members_are_frozen_at_the_start_so_a_later_patient_is_not_reached(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    await clinic.patient()
    cohort = await cohort_of_everyone(client, auth)
    launched = await launch(client, auth, cohort_id=cohort, journey_id=journey, pace_per_minute=1)
    handle = temporal_env.client.get_workflow_handle(campaign_workflow_id(launched["id"]))

    async def frozen() -> bool:
        return (await campaign(client, auth, launched["id"]))["frozen_at"] is not None

    await eventually(frozen, "the members frozen")
    late = await clinic.patient(last_name="Late")  # meets the criteria, but after the start
    assert await handle.result() == "completed"
    assert late not in await instances_by_patient(system_sessionmaker, tenant_id, journey)
    assert (await campaign(client, auth, launched["id"]))["counts"]["members"] == 1


async def test_pause_holds_the_campaign_and_resume_continues_where_it_stopped(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    launched, journey = await first_of_one_a_minute(client, auth, clinic, 3)
    paused = await client.post(f"{API}/campaigns/{launched['id']}/pause", headers=auth)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    assert (await client.post(f"{API}/campaigns/{launched['id']}/pause", headers=auth)).status_code == 200

    # Paused, a minute (and much more) passes on the server's clock: nobody else is enrolled.
    await temporal_env.sleep(3600)
    assert (await campaign(client, auth, launched["id"]))["counts"] | {"skipped": {}} == {
        "members": 3,
        "pending": 2,
        "enrolled": 1,
        "sent": 0,
        "skipped": {},
    }

    resumed = await client.post(f"{API}/campaigns/{launched['id']}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert await result_of(temporal_env, launched["id"]) == "completed"
    assert sorted((await instances_by_patient(system_sessionmaker, tenant_id, journey)).values()) == [1, 1, 1]


async def test_cancel_leaves_the_members_not_yet_enrolled_untouched(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    launched, journey = await first_of_one_a_minute(client, auth, clinic, 3)
    cancelled = await client.post(f"{API}/campaigns/{launched['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await result_of(temporal_env, launched["id"]) == "cancelled"

    after = await campaign(client, auth, launched["id"])
    assert (after["status"], after["counts"]["enrolled"], after["counts"]["pending"]) == ("cancelled", 1, 2)
    assert len(await instances_by_patient(system_sessionmaker, tenant_id, journey)) == 1
    for action in ("pause", "resume"):
        refused = await client.post(f"{API}/campaigns/{launched['id']}/{action}", headers=auth)
        assert refused.status_code == 409, refused.text
    again = await client.post(f"{API}/campaigns/{launched['id']}/cancel", headers=auth)
    assert again.status_code == 200  # a repeated click


async def test_a_campaign_starting_later_freezes_its_members_only_then(
    client, auth, clinic, temporal_env, temporal_worker
) -> None:
    journey = await clinic.journey()
    await clinic.patient()
    cohort = await cohort_of_everyone(client, auth)
    now = await temporal_env.get_current_time()
    starts = (now.replace(microsecond=0) + timedelta(days=2)).isoformat()
    launched = await launch(client, auth, cohort_id=cohort, journey_id=journey, starts_at=starts)
    assert (await campaign(client, auth, launched["id"]))["frozen_at"] is None
    await clinic.patient(last_name="Joined")  # joins before the start: reached
    assert await result_of(temporal_env, launched["id"], step=86400) == "completed"
    assert (await campaign(client, auth, launched["id"]))["counts"]["enrolled"] == 2


async def test_launching_while_temporal_is_down_answers_201_with_the_start_waiting(
    client, auth, clinic, app, system_sessionmaker, tenant_id
) -> None:
    """The app of the suite points at no Temporal server: the launch is saved with its workflow's start."""
    journey = await clinic.journey()
    cohort = await cohort_of_everyone(client, auth)
    launched = await launch(client, auth, cohort_id=cohort, journey_id=journey)

    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        (command,) = await session.scalars(
            select(WorkflowCommand).where(WorkflowCommand.workflow_id == campaign_workflow_id(launched["id"]))
        )
    assert (command.kind, command.start_workflow, command.delivered_at) == ("start", "CampaignWorkflow", None)


async def test_a_repeated_launch_with_the_same_idempotency_key_returns_the_first(
    client, auth, clinic
) -> None:
    journey = await clinic.journey()
    cohort = await cohort_of_everyone(client, auth)
    body = {"name": "Flu shots", "cohort_id": cohort, "journey_id": str(journey)}
    headers = {**auth, "Idempotency-Key": f"launch-{uuid.uuid4()}"}
    first = await client.post(f"{API}/campaigns", json=body, headers=headers)
    second = await client.post(f"{API}/campaigns", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    listed = await client.get(f"{API}/campaigns", headers=auth)
    assert [c["id"] for c in listed.json()["items"]] == [first.json()["id"]]


async def test_a_journey_deactivated_mid_campaign_fails_it_with_the_reason_and_keeps_the_enrolled(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    launched, journey = await first_of_one_a_minute(client, auth, clinic, 3)
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await session.execute(update(Journey).where(Journey.id == journey).values(is_active=False))
        await session.commit()
    assert await result_of(temporal_env, launched["id"]) == "failed"
    failed = await campaign(client, auth, launched["id"])
    assert failed["failure_reason"].startswith("Conflict: This journey is inactive")
    assert (failed["counts"]["enrolled"], failed["counts"]["pending"]) == (1, 2)
