"""A campaign survives what a clinic's servers go through: its worker killed (SIGKILL) mid-way, and Temporal
stopped for 30 s mid-way. Either way every member ends enrolled exactly once: the database's unique keys,
not luck, make a retried batch harmless."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import ActivityDeps
from tests.campaigns.support import campaign, cohort_of_everyone, instances_by_patient, launch
from tests.dedicated_postgres import free_port
from tests.polling import eventually
from tests.temporal_envs import app_workers, start_dev_server
from tests.worker_processes import kill, start_worker

MEMBERS = 200
PACE = 2400  # a batch of 100, then 2.5 s before the next: room to strike during and between batches


async def _population(clinic: Any) -> set[uuid.UUID]:
    return {await clinic.patient(last_name=f"M{i:03d}") for i in range(MEMBERS)}


def _point_app(app: Any, settings: Any, monkeypatch: Any, client: Client | None, queue: str) -> None:
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    # setitem on the state's dict: monkeypatch.setattr would delete the attribute on undo (Starlette's State)
    monkeypatch.setitem(app.state._state, "temporal_client", client)


async def _enrolled(client: Any, auth: dict[str, str], campaign_id: str) -> int:
    return int((await campaign(client, auth, campaign_id))["counts"]["enrolled"])


async def test_a_worker_killed_mid_campaign_enrols_no_one_twice_and_no_one_is_lost(
    app, client, auth, clinic, settings, dev_env, database_url, system_sessionmaker, tenant_id, monkeypatch
) -> None:
    queue = f"campaign-kill-{uuid.uuid4().hex[:8]}"
    _point_app(app, settings, monkeypatch, dev_env.client, queue)
    patients = await _population(clinic)
    journey = await clinic.journey()
    launched = await launch(
        client,
        auth,
        cohort_id=await cohort_of_everyone(client, auth),
        journey_id=journey,
        pace_per_minute=PACE,
    )
    worker = await start_worker(dev_env, database_url, queue, PRM_WORKER_METRICS_PORT="0")
    try:
        first_batch = lambda: _at_least(client, auth, launched["id"], 1)  # noqa: E731
        await eventually(first_batch, "the first batch", within=60)
        await kill(worker)  # mid-campaign: a batch committed (maybe a second under way), the rest pending
        worker = await start_worker(dev_env, database_url, queue, PRM_WORKER_METRICS_PORT="0")
        result = await asyncio.wait_for(
            dev_env.client.get_workflow_handle(f"campaign-{launched['id']}").result(), timeout=90
        )
    finally:
        await kill(worker)
    assert result == "completed"
    counts = (await campaign(client, auth, launched["id"]))["counts"]
    assert (counts["members"], counts["enrolled"], counts["pending"]) == (MEMBERS, MEMBERS, 0)
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {p: 1 for p in patients}


async def _at_least(client: Any, auth: dict[str, str], campaign_id: str, n: int) -> bool:
    return await _enrolled(client, auth, campaign_id) >= n


@asynccontextmanager
async def _worker(temporal: Client, queue: str, deps: ActivityDeps) -> AsyncIterator[Worker]:
    async with app_workers(temporal, queue, deps) as (running, _control):
        yield running


async def test_temporal_stopped_for_30_s_mid_campaign_loses_and_repeats_nothing(
    app, client, auth, clinic, settings, system_sessionmaker, tenant_id, monkeypatch, tmp_path: Path
) -> None:
    port, db_file, queue = free_port(), tmp_path / "temporal.db", f"campaign-outage-{uuid.uuid4().hex[:8]}"
    server = await start_dev_server(port=port, db_file=db_file)
    temporal = await Client.connect(
        f"127.0.0.1:{port}"
    )  # the worker's and the app's, kept through the outage
    _point_app(app, settings, monkeypatch, temporal, queue)
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    patients = await _population(clinic)
    journey = await clinic.journey()
    try:
        launched = await launch(
            client,
            auth,
            cohort_id=await cohort_of_everyone(client, auth),
            journey_id=journey,
            pace_per_minute=PACE,
        )
        async with _worker(temporal, queue, deps):
            await eventually(
                lambda: _at_least(client, auth, launched["id"], 100), "the first batch", within=60
            )
        await server.shutdown()
        await asyncio.sleep(30)
        stalled = await _enrolled(client, auth, launched["id"])
        assert 100 <= stalled < MEMBERS  # nothing moves while Temporal is away
        server = await start_dev_server(port=port, db_file=db_file)
        async with _worker(temporal, queue, deps):
            result = await asyncio.wait_for(
                temporal.get_workflow_handle(f"campaign-{launched['id']}").result(), timeout=90
            )
    finally:
        await server.shutdown()
    assert result == "completed"
    counts = (await campaign(client, auth, launched["id"]))["counts"]
    assert (counts["members"], counts["enrolled"], counts["pending"]) == (MEMBERS, MEMBERS, 0)
    assert await instances_by_patient(system_sessionmaker, tenant_id, journey) == {p: 1 for p in patients}
