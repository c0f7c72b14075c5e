"""Recurring campaigns against the real PostgreSQL and a real Temporal dev server (Schedules need one): each
fire of the schedule launches one occurrence, a campaign of its own that re-evaluates the cohort and skips
the patients an earlier occurrence reached within the cool-down; pause, resume and cancel reach the
schedule through the outbox; a Temporal outage while the schedule is created loses nothing.

Fires are made deterministic with `ScheduleHandle.trigger()` (the schedules fire every 30 days)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities import ActivityDeps
from activities.campaign_schedules import CampaignScheduleActivities
from core.audit import AuditRecord
from core.database import bind_tenant, mark_system
from core.gateway import ScheduledStart, WorkflowGateway, WorkflowStart
from core.workflow_commands import (
    SCHEDULE_DELETE,
    SCHEDULE_PAUSE,
    CommandRelay,
    WorkflowCommand,
    deliver_pending,
    record_schedule,
    record_schedule_change,
)
from domain.campaigns.plan import LaunchInput, LaunchOutcome, OccurrenceInput, campaign_schedule_id
from tests.audit.support import chain_waiting
from tests.campaigns.support import API, campaign, cohort_of_everyone, instances_by_patient, members
from tests.dedicated_postgres import free_port
from tests.polling import eventually
from tests.temporal_envs import app_workers, start_dev_server


@pytest.fixture
async def dev_worker(app, settings, dev_env, system_sessionmaker, monkeypatch) -> AsyncIterator[Client]:
    """A worker on a fresh task queue of the run's dev server, and the API pointed at both; the client."""
    queue = f"recurring-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    # Saved and put back by hand: monkeypatch would delete the app's client on undo (Starlette's `State`).
    saved, app.state.temporal_client = app.state.temporal_client, dev_env.client
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    try:
        async with app_workers(dev_env.client, queue, deps):
            yield dev_env.client
    finally:
        app.state.temporal_client = saved


async def _recurring(client: Any, auth: dict[str, str], cohort: str, journey: Any, **fields: Any) -> dict:
    body = {
        "name": f"Annual recall {uuid.uuid4().hex[:6]}",
        "cohort_id": cohort,
        "journey_id": str(journey),
        "recurrence": {"every_days": 30, "cooldown_days": 60},
        **fields,
    }
    answer = await client.post(f"{API}/campaigns", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def _runs(client: Any, auth: dict[str, str], definition_id: str) -> list[dict]:
    return list((await campaign(client, auth, definition_id))["recurrence"]["runs"])


async def _run_ended(client: Any, auth: dict[str, str], definition_id: str, n: int) -> dict | None:
    """The `n`-th run (1-based, oldest first) once it has completed."""
    runs = list(reversed(await _runs(client, auth, definition_id)))
    return runs[n - 1] if len(runs) >= n and runs[n - 1]["status"] == "completed" else None


async def _fire(temporal: Client, definition_id: str) -> None:
    """Fire the definition's schedule now, a second after the previous fire at least: Temporal keys a fire
    by its second (the fire's workflow id and `TemporalScheduledStartTime`), so two fires within one
    second are one fire, and launch one run. Overlap allowed: the schedule learns that the previous fire's
    launcher workflow closed a moment after it did, and would skip a fire made in that moment; whether a
    run is still going is the database's to decide (`launch_occurrence`)."""
    await asyncio.sleep(1)
    handle = temporal.get_schedule_handle(campaign_schedule_id(definition_id))
    await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)


async def _schedule(temporal: Client, definition_id: str) -> Any:
    """The definition's Temporal Schedule, described (RPCError NOT_FOUND when there is none)."""
    return await temporal.get_schedule_handle(campaign_schedule_id(definition_id)).describe()


async def _schedule_exists(temporal: Client, definition_id: object) -> bool:
    try:
        await _schedule(temporal, str(definition_id))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def test_a_second_occurrence_skips_the_recently_reached_and_reaches_who_joined_since(
    client, auth, clinic, dev_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    first = [await clinic.patient(last_name=f"First{i}") for i in range(2)]
    definition = await _recurring(client, auth, await cohort_of_everyone(client, auth), journey)
    assert definition["status"] == "scheduled" and definition["counts"]["members"] == 0
    assert definition["recurrence"]["schedule_state"] == "active"

    # No starts_at: the schedule fires once at its creation.
    run1 = await eventually(lambda: _run_ended(client, auth, definition["id"], 1), "the first run", within=60)
    assert run1["counts"]["enrolled"] == 2
    newcomer = await clinic.patient(last_name="Joined")  # the cohort is re-evaluated at the next fire

    await _fire(dev_worker, definition["id"])
    run2 = await eventually(
        lambda: _run_ended(client, auth, definition["id"], 2), "the second run", within=60
    )

    assert run2["id"] != run1["id"]
    assert run2["counts"] == {
        "members": 3,
        "pending": 0,
        "enrolled": 1,
        "sent": 0,
        "skipped": {"cooldown": 2},
    }
    rows = {m.patient_id: m for m in await members(system_sessionmaker, tenant_id, run2["id"])}
    assert rows[newcomer].state == "enrolled"
    assert {rows[p].skip_reason for p in first} == {"cooldown"}
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {
        first[0]: 1,
        first[1]: 1,
        newcomer: 1,
    }
    shown = await campaign(client, auth, definition["id"])
    assert shown["recurrence"]["runs_total"] == 2
    assert shown["counts"]["enrolled"] == 3 and shown["counts"]["skipped"] == {"cooldown": 2}
    assert datetime.fromisoformat(shown["recurrence"]["next_run_at"]) > datetime.now(UTC) + timedelta(days=29)
    occurrence = await campaign(client, auth, run2["id"])  # a run is a campaign like any other
    assert occurrence["definition_id"] == definition["id"] and occurrence["recurrence"] is None
    listed = await client.get(f"{API}/campaigns", params={"definition_id": definition["id"]}, headers=auth)
    assert {c["id"] for c in listed.json()["items"]} == {run1["id"], run2["id"]}


async def test_without_a_cooldown_a_patient_is_reached_again(
    client, auth, clinic, dev_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    patient = await clinic.patient()
    definition = await _recurring(
        client,
        auth,
        await cohort_of_everyone(client, auth),
        journey,
        recurrence={"every_days": 7},
    )
    await eventually(lambda: _run_ended(client, auth, definition["id"], 1), "the first run", within=60)
    await _fire(dev_worker, definition["id"])
    run2 = await eventually(
        lambda: _run_ended(client, auth, definition["id"], 2), "the second run", within=60
    )
    assert run2["counts"]["enrolled"] == 1
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {patient: 2}


async def test_a_fire_repeated_for_the_same_time_makes_one_run(
    client, auth, clinic, settings, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    await clinic.patient()
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()  # its schedule never fires in this test
    definition = await _recurring(
        client, auth, await cohort_of_everyone(client, auth), journey, starts_at=starts
    )
    launch = CampaignScheduleActivities(ActivityDeps(settings=settings, sessionmaker=system_sessionmaker))
    fire = LaunchInput(str(tenant_id), definition["id"], scheduled_for="2026-12-07T09:00:00+00:00")

    results = await asyncio.gather(launch.launch_occurrence(fire), launch.launch_occurrence(fire))
    again = await launch.launch_occurrence(fire)  # a retry after the first attempt committed

    assert sorted(r.outcome for r in results) == [LaunchOutcome.ALREADY_LAUNCHED, LaunchOutcome.LAUNCHED]
    assert again.outcome == LaunchOutcome.ALREADY_LAUNCHED
    assert {r.campaign_id for r in [*results, again]} == {results[0].campaign_id}
    shown = await campaign(client, auth, definition["id"])
    assert shown["recurrence"]["runs_total"] == 1
    starts_of_run = await _commands(system_sessionmaker, tenant_id, f"campaign-{results[0].campaign_id}")
    assert [c.kind for c in starts_of_run] == ["start"]
    await chain_waiting(system_sessionmaker)
    async with system_sessionmaker() as session:  # the launch is on the audit trail, once
        mark_system(session)
        launches = list(
            await session.scalars(
                select(AuditRecord).where(
                    AuditRecord.tenant_id == tenant_id, AuditRecord.action == "campaigns.launch_occurrence"
                )
            )
        )
    assert [(r.resource_id, r.user_sub) for r in launches] == [
        (uuid.UUID(results[0].campaign_id), "system:campaign-schedule")
    ]


async def test_a_fire_while_the_previous_run_goes_on_is_skipped(
    client, auth, clinic, settings, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    await clinic.patient()
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    definition = await _recurring(
        client, auth, await cohort_of_everyone(client, auth), journey, starts_at=starts
    )
    launch = CampaignScheduleActivities(ActivityDeps(settings=settings, sessionmaker=system_sessionmaker))

    def fire(at: str) -> LaunchInput:
        return LaunchInput(str(tenant_id), definition["id"], scheduled_for=at)

    first = await launch.launch_occurrence(fire("2026-12-07T09:00:00+00:00"))
    overlapping = await launch.launch_occurrence(fire("2027-01-06T09:00:00+00:00"))  # the first not ended

    assert first.outcome == LaunchOutcome.LAUNCHED
    assert overlapping.outcome == LaunchOutcome.SKIPPED_OVERLAP
    assert (await campaign(client, auth, definition["id"]))["recurrence"]["runs_total"] == 1


async def test_pause_stops_future_occurrences_and_resume_restarts_them(
    client, auth, clinic, dev_worker, settings, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    starts = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    definition = await _recurring(
        client, auth, await cohort_of_everyone(client, auth), journey, starts_at=starts
    )
    await eventually(lambda: _schedule_exists(dev_worker, definition["id"]), "the schedule", within=30)

    paused = await client.post(f"{API}/campaigns/{definition['id']}/pause", headers=auth)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["recurrence"] == {**paused.json()["recurrence"], "schedule_state": "paused"}
    assert paused.json()["recurrence"]["next_run_at"] is None

    async def schedule_paused() -> bool:
        return bool((await _schedule(dev_worker, definition["id"])).schedule.state.paused)

    await eventually(schedule_paused, "the schedule paused", within=30)
    # A fire that raced the pause launches nothing either.
    launch = CampaignScheduleActivities(ActivityDeps(settings=settings, sessionmaker=system_sessionmaker))
    raced = await launch.launch_occurrence(
        LaunchInput(str(tenant_id), definition["id"], scheduled_for=datetime.now(UTC).isoformat())
    )
    assert raced.outcome == LaunchOutcome.SKIPPED_NOT_ACTIVE
    assert (await campaign(client, auth, definition["id"]))["recurrence"]["runs_total"] == 0

    resumed = await client.post(f"{API}/campaigns/{definition['id']}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["status"] == "scheduled"
    assert resumed.json()["recurrence"]["next_run_at"] is not None

    async def schedule_running() -> bool:
        return not (await _schedule(dev_worker, definition["id"])).schedule.state.paused

    await eventually(schedule_running, "the schedule unpaused", within=30)


async def test_cancel_deletes_the_schedule_and_cancels_the_run_under_way(
    client, auth, clinic, dev_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    for i in range(3):
        await clinic.patient(last_name=f"Slow{i}")
    definition = await _recurring(
        client, auth, await cohort_of_everyone(client, auth), journey, pace_per_minute=1
    )

    async def first_enrolled() -> dict | None:
        runs = await _runs(client, auth, definition["id"])
        return runs[0] if runs and runs[0]["counts"]["enrolled"] == 1 else None

    run = await eventually(first_enrolled, "the first run's first member", within=60)  # the next: in 1 min
    cancelled = await client.post(f"{API}/campaigns/{definition['id']}/cancel", headers=auth)

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["recurrence"]["schedule_state"] == "deleted"
    assert (await campaign(client, auth, run["id"]))["status"] == "cancelled"
    await eventually(
        lambda: _not(_schedule_exists(dev_worker, definition["id"])), "the schedule deleted", within=30
    )
    result = await dev_worker.get_workflow_handle(f"campaign-{run['id']}").result()
    assert result == "cancelled"
    assert (await campaign(client, auth, run["id"]))["counts"]["enrolled"] == 1  # the rest never were


async def _not(check: Any) -> bool:
    return not await check


async def test_a_temporal_outage_while_the_schedule_is_created_loses_nothing(
    app, client, auth, clinic, settings, system_sessionmaker, tenant_id, monkeypatch
) -> None:
    port, queue = free_port(), f"recurring-outage-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_address", f"127.0.0.1:{port}")  # nothing listens there yet
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    saved, app.state.temporal_client = app.state.temporal_client, None  # connects on first use: to `port`
    try:
        await _outage_loses_nothing(
            client, auth, clinic, settings, system_sessionmaker, tenant_id, port, queue
        )
    finally:
        app.state.temporal_client = saved


async def _outage_loses_nothing(
    client, auth, clinic, settings, system_sessionmaker, tenant_id, port: int, queue: str
) -> None:
    journey = await clinic.journey()
    patient = await clinic.patient()

    definition = await _recurring(client, auth, await cohort_of_everyone(client, auth), journey)

    schedule_id = campaign_schedule_id(definition["id"])
    [pending] = await _commands(system_sessionmaker, tenant_id, schedule_id)
    assert pending.kind == "schedule" and pending.delivered_at is None
    server = await start_dev_server(port=port)
    try:
        temporal = server.client
        deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
        relay = CommandRelay(system_sessionmaker, WorkflowGateway.of_client(temporal, queue))
        async with app_workers(temporal, queue, deps):

            async def relayed() -> bool:
                await relay()
                [command] = await _commands(system_sessionmaker, tenant_id, schedule_id)
                return command.outcome == "delivered"

            await eventually(relayed, "the relay to create the schedule", within=60, interval=0.5)

            async def run_delivered() -> dict | None:
                await relay()  # the occurrence's workflow start, if the fast path left it
                return await _run_ended(client, auth, definition["id"], 1)

            await eventually(run_delivered, "the first run", within=60, interval=0.5)
            assert await _schedule_exists(temporal, definition["id"])
    finally:
        await server.shutdown()
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {patient: 1}


async def test_a_recurrence_below_a_day_is_refused_naming_the_field(client, auth, clinic) -> None:
    journey = await clinic.journey()
    cohort = await cohort_of_everyone(client, auth)
    for recurrence, field in (
        ({"every_days": 0}, "every_days"),
        ({"every_days": 7, "cooldown_days": -1}, "cooldown_days"),
        ({"every_days": 7, "every_hours": 1}, "every_hours"),
    ):
        body = {"name": "R", "cohort_id": cohort, "journey_id": str(journey), "recurrence": recurrence}
        answer = await client.post(f"{API}/campaigns", json=body, headers=auth)
        assert answer.status_code == 422, answer.text
        assert ["body", "recurrence", field] in [e["loc"] for e in answer.json()["detail"]]


async def test_each_schedule_command_is_harmless_twice_and_goes_in_order(
    dev_env, system_sessionmaker, tenant_id
) -> None:
    definition_id = uuid.uuid4()
    schedule_id = campaign_schedule_id(definition_id)
    spec = ScheduledStart(
        schedule_id=schedule_id,
        start=WorkflowStart(
            workflow="CampaignOccurrenceWorkflow",
            workflow_id=f"occurrence-{schedule_id}",
            input=OccurrenceInput(tenant_id=str(tenant_id), definition_id=str(uuid.uuid4())),
        ),
        every=timedelta(days=30),
        first_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=1),
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record_schedule(session, spec)
        for op in (SCHEDULE_PAUSE, SCHEDULE_PAUSE):
            record_schedule_change(session, schedule_id=schedule_id, op=op)
        record_schedule(session, spec)  # delivered twice, as after a lost acknowledgement
        for op in (SCHEDULE_DELETE, SCHEDULE_DELETE):
            record_schedule_change(session, schedule_id=schedule_id, op=op)
        await session.commit()
    recorded = await _commands(system_sessionmaker, tenant_id, schedule_id)
    gateway = WorkflowGateway.of_client(dev_env.client, f"schedules-{uuid.uuid4().hex[:8]}")

    async with system_sessionmaker() as session:
        mark_system(session)
        await deliver_pending(session, gateway, ids=[c.id for c in recorded[:3]])
    assert (await _schedule(dev_env.client, str(definition_id))).schedule.state.paused
    async with system_sessionmaker() as session:
        mark_system(session)
        await deliver_pending(session, gateway, ids=[c.id for c in recorded])

    delivered = await _commands(system_sessionmaker, tenant_id, schedule_id)
    assert [c.outcome for c in delivered] == [
        "delivered",
        "delivered",
        "delivered",
        "already_started",
        "delivered",
        "not_running",
    ]
    assert not await _schedule_exists(dev_env.client, definition_id)


async def _commands(sessionmaker: Any, tenant_id: uuid.UUID, workflow_id: str) -> list[WorkflowCommand]:
    async with sessionmaker() as session:
        mark_system(session)
        return list(
            await session.scalars(
                select(WorkflowCommand)
                .where(WorkflowCommand.tenant_id == tenant_id, WorkflowCommand.workflow_id == workflow_id)
                .order_by(WorkflowCommand.id)
            )
        )
