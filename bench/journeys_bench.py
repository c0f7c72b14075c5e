"""Journey throughput: N journey instances started through the API, next to bare Temporal workflows.

    .venv/bin/python -m bench.journeys_bench [--instances 200] [--concurrency 20]

One run, one Temporal dev server (the `temporal` CLI from the venv), one in-process worker: first N
instances of a three-stage journey (immediate welcome SMS, immediate ticket, immediate closing stage) are
started through `POST /journeys/instances` and run to completion; then N bare workflows, each running as
many no-op activities as one journey instance ran, are started on the same server. The figures replace
the `journeys` section of BENCHMARKS.md. Goal: journeys complete at >= 0.5x the bare rate.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from api.app import create_app
from bench.bare_workflow import BareInput, BareWorkflow, noop
from bench.common import insert_tenant, scratch_database, write_section
from core.auth import Role, issue_dev_token
from core.database import make_engine, make_sessionmaker, mark_system
from core.embedded_db import to_libpq_url
from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES, dev_server_binary
from domain.journeys.models import JourneyInstance
from workflows.journey import JourneyInstanceWorkflow

JOURNEY = {
    "name": "Bench Journey",
    "journey_type": "benchmark",
    "stages": [
        {
            "name": "Welcome",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [
                {"type": "send_message", "channel": "sms", "text": "Welcome, {{ patient_first_name }}"}
            ],
        },
        {
            "name": "Follow-up ticket",
            "order_index": 2,
            "trigger_event": "immediate",
            "actions": [{"type": "create_ticket", "title": "Benchmark follow-up"}],
        },
        {"name": "Done", "order_index": 3, "trigger_event": "immediate", "actions": {}},
    ],
}


def seed_patients(url: str, tenant_id: uuid.UUID, count: int) -> list[str]:
    """`count` patients with phone numbers, inserted with SQL; returns their ids."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        rows = conn.execute(
            """
            INSERT INTO patients (id, tenant_id, mrn, first_name, last_name, phone_primary, status, meta_data)
            SELECT gen_random_uuid(), %s, 'MRN-B' || i, 'Pat', 'Bench' || i,
                   '+1415' || lpad((2000000 + i)::text, 7, '0'), 'active', '{}'::jsonb
            FROM generate_series(1, %s) AS i
            RETURNING id
            """,
            (tenant_id, count),
        ).fetchall()
    return [str(r[0]) for r in rows]


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run `jobs` with at most `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the marker a local activity leaves in the history


async def activities_per_instance(client: Client, instance_id: str) -> int:
    """How many activities, regular and local, one journey instance ran (read from its history)."""
    history = await client.get_workflow_handle(f"journey-instance-{instance_id}").fetch_history()
    regular = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    local = sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    )
    return regular + local


async def run(instances: int, concurrency: int) -> dict[str, float]:
    """Both phases on one server; returns the figures."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(dev_server_binary()),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--log-level", "error"],
    )
    async with env:
        with scratch_database() as url:
            tenant_id = insert_tenant(url)
            patients = seed_patients(url, tenant_id, instances)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            settings = Settings(env="test", database_url=url, temporal_task_queue=queue, db_pool_size=20)
            engine = make_engine(url, settings)
            deps = ActivityDeps(settings=settings, sessionmaker=make_sessionmaker(engine))
            app = create_app(settings, database_url=url)
            token = issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.COORDINATOR])
            headers = {"Authorization": f"Bearer {token}"}
            worker = Worker(
                env.client,
                task_queue=queue,
                workflows=[JourneyInstanceWorkflow, BareWorkflow],
                activities=[*JourneyActivities(deps).all(), noop],
                max_concurrent_activities=50,
            )
            async with app.router.lifespan_context(app), worker:
                app.state.temporal_client = env.client
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
                    created = await api.post("/api/v1/prm/journeys", json=JOURNEY, headers=headers)
                    created.raise_for_status()
                    journey_id = created.json()["id"]

                    def start(patient: str) -> Callable[[], Awaitable[str]]:
                        async def go() -> str:
                            body = {"journey_id": journey_id, "patient_id": patient}
                            resp = await api.post(
                                "/api/v1/prm/journeys/instances", json=body, headers=headers
                            )
                            resp.raise_for_status()
                            return str(resp.json()["id"])

                        return go

                    started = time.perf_counter()
                    ids = await bounded(concurrency, [start(p) for p in patients])
                    await bounded(
                        concurrency,
                        [
                            lambda i=i: env.client.get_workflow_handle(f"journey-instance-{i}").result()
                            for i in ids
                        ],
                    )
                    journey_seconds = time.perf_counter() - started

                async with deps.sessionmaker() as session:
                    mark_system(session)
                    completed = await session.scalar(
                        select(func.count())
                        .select_from(JourneyInstance)
                        .where(JourneyInstance.status == "completed")
                    )
                per_instance = await activities_per_instance(env.client, ids[0])

                started = time.perf_counter()

                def bare(n: int) -> Callable[[], Awaitable[int]]:
                    return lambda: env.client.execute_workflow(
                        BareWorkflow.run,
                        BareInput(per_instance),
                        id=f"bench-bare-{n}-{uuid.uuid4().hex[:6]}",
                        task_queue=queue,
                    )

                await bounded(concurrency, [bare(n) for n in range(instances)])
                bare_seconds = time.perf_counter() - started
            await engine.dispose()
    return {
        "instances": instances,
        "completed": float(completed or 0),
        "activities": per_instance,
        "journey_rate": instances / journey_seconds,
        "bare_rate": instances / bare_seconds,
    }


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    figures = asyncio.run(run(args.instances, args.concurrency))
    ratio = figures["journey_rate"] / figures["bare_rate"]
    print(figures, f"ratio {ratio:.2f}")
    body = "\n".join(
        [
            "## Journey throughput",
            "",
            f"`python -m bench.journeys_bench --instances {args.instances} --concurrency {args.concurrency}` "
            f"on {platform.machine()}, Python {platform.python_version()}, one Temporal dev server and one "
            "in-process worker on the same machine as PostgreSQL. Each journey instance is started through "
            f"the API and runs {figures['activities']:.0f} activities (stage bookkeeping as local "
            "activities, one SMS through the outbox provider, one ticket); the bare workflow runs the same "
            "number of regular no-op activities.",
            "",
            "| run | instances | completed / s |",
            "| --- | --- | --- |",
            f"| journeys through the API | {args.instances} ({figures['completed']:.0f} completed) "
            f"| {figures['journey_rate']:.1f} |",
            f"| bare Temporal workflows | {args.instances} | {figures['bare_rate']:.1f} |",
            "",
            f"Ratio: **{ratio:.2f}x** of bare Temporal (goal: at least 0.5x).",
        ]
    )
    write_section("journeys", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
