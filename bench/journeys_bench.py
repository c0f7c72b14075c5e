"""Journey throughput: N journey instances started through the API, next to bare Temporal workflows.

    .venv/bin/python -m bench.journeys_bench [--instances 200] [--concurrency 20] [--rounds 3]

One Temporal dev server (the `temporal` CLI from the venv), one worker process, a warm-up that is not
measured (`WARM_UP` journeys and bare workflows), and rounds of two phases:
N instances of a three-stage journey (immediate welcome SMS, immediate ticket, immediate closing stage) are
started through `POST /journeys/instances` and run to completion; then N bare workflows, each running as
many no-op activities as one journey instance ran, are started on the same server. The ratio is read per
round and the median reported: on two shared cores one round's ratio moved from 0.23 to 0.44 between runs
of the same code. The figures replace the `journeys` section of BENCHMARKS.md. Goal: journeys complete at
>= 0.5x the bare rate.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psutil
import psycopg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.app import create_app
from bench.bare_workflow import BareInput, BareWorkflow
from bench.common import (
    NO_QUIET_HOURS,
    ROOT,
    PeakRss,
    insert_tenant,
    scratch_database,
    temporal_dev_server,
    write_section,
)
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings

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


async def activity_mix(client: Client, instance_id: str) -> tuple[int, int]:
    """How many regular and how many local activities one journey instance ran (read from its history)."""
    history = await client.get_workflow_handle(f"journey-instance-{instance_id}").fetch_history()
    regular = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    local = sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    )
    return regular, local


async def activity_sequence(client: Client, instance_id: str) -> str:
    """The activities one journey instance ran, in order: `R` for a regular one, `L` for a local one."""
    history = await client.get_workflow_handle(f"journey-instance-{instance_id}").fetch_history()
    return "".join(
        "R" if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED else "L"
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        or (
            e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        )
    )


def start_worker_process(
    database_url: str, temporal_address: str, queue: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`bench.worker_process` in its own process (as in production), with `extra_env` set too; returns once
    it polls."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "PRM_TEMPORAL_TASK_QUEUE": queue,
        "PRM_LOG_LEVEL": "WARNING",
        "PRM_WORKER_METRICS_PORT": "0",  # no metrics endpoint: benchmarks may run side by side
        **(extra_env or {}),
    }
    # The workflow sandbox imports a workflow's module afresh for every run: an installed package has its
    # bytecode (pip compiles it at install), a checkout run with PYTHONDONTWRITEBYTECODE has none and would
    # compile the module's source every time. Compiled here as pip would.
    for package in ("workflows", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.worker_process"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if "worker ready" not in line:
        worker.kill()
        raise RuntimeError("the benchmark worker did not start")
    # Keep reading what it prints (the SDK core logs to stdout): a full pipe would block the worker.
    threading.Thread(target=worker.stdout.read, daemon=True).start()
    return worker


def bench_settings(url: str, queue: str) -> Settings:
    """The benchmarks' API settings: their scratch database and task queue, a larger pool, and rate limits
    that run but never answer 429."""
    return Settings(
        env="test",
        database_url=url,
        temporal_task_queue=queue,
        db_pool_size=20,
        rate_limit_per_user="1000000/minute",
        rate_limit_per_tenant="1000000/minute",
    )


async def start_journeys(
    app: Any, tenant_id: uuid.UUID, journey: dict[str, Any], patients: list[str], concurrency: int
) -> tuple[float, list[str]]:
    """Create `journey` and start one instance of it per patient through the API, `concurrency` requests at
    once; (seconds to start them all, the instance ids)."""
    token = issue_dev_token(app.state.settings, tenant_id=tenant_id, roles=[Role.COORDINATOR])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:
        created = await api.post("/api/v1/prm/journeys", json=journey, headers=headers)
        created.raise_for_status()
        journey_id = created.json()["id"]

        def start(patient: str) -> Callable[[], Awaitable[str]]:
            async def go() -> str:
                body = {"journey_id": journey_id, "patient_id": patient}
                resp = await api.post("/api/v1/prm/journeys/instances", json=body, headers=headers)
                resp.raise_for_status()
                return str(resp.json()["id"])

            return go

        started = time.perf_counter()
        ids = await bounded(concurrency, [start(p) for p in patients])
        return time.perf_counter() - started, ids


async def journeys_through_the_api(
    app: Any, client: Client, tenant_id: uuid.UUID, patients: list[str], concurrency: int
) -> tuple[float, list[str]]:
    """Start one journey instance per patient through the API and wait for all; (seconds, instance ids)."""
    started = time.perf_counter()
    seconds, ids = await start_journeys(app, tenant_id, JOURNEY, patients, concurrency)
    print(f"  all instances started after {seconds:.1f} s", flush=True)
    handles = [client.get_workflow_handle(f"journey-instance-{i}") for i in ids]
    await bounded(concurrency, [handle.result for handle in handles])
    return time.perf_counter() - started, ids


async def bare_workflows(client: Client, queue: str, count: int, sequence: str, concurrency: int) -> float:
    """Run `count` bare workflows, each running no-op activities as `sequence` says (the journey's regular
    and local activities, in its order, with its options); the seconds it took."""

    def bare(n: int) -> Callable[[], Awaitable[int]]:
        return (
            lambda: client.execute_workflow(  # type: ignore[misc]
                BareWorkflow.run,
                BareInput(sequence=sequence),
                id=f"bench-bare-{n}-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
        )

    started = time.perf_counter()
    await bounded(concurrency, [bare(n) for n in range(count)])
    return time.perf_counter() - started


class WorkerCpu:
    """The CPU time (user and system, seconds) the worker process used between two calls: what one phase
    cost it, whatever else the machine ran meanwhile."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.last = self._used()

    def _used(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def since_last(self) -> float:
        """Seconds of CPU since the previous call (or since this was made)."""
        used = self._used()
        spent, self.last = used - self.last, used
        return spent


async def completed_instances(url: str) -> int:
    """How many journey instances the database shows completed."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM journey_instances WHERE status = 'completed'").fetchone()
    return int(row[0]) if row else 0


WARM_UP = 50  # journeys and bare workflows run before the rounds, unmeasured


async def run(instances: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """`rounds` rounds on one server and one worker process, after an unmeasured warm-up, each a journey
    phase then a bare phase (so the two phases of a round share the machine's conditions); returns the
    figures, per round."""
    env = await temporal_dev_server()
    async with env:
        with scratch_database() as url:
            tenant_id = insert_tenant(url, settings=NO_QUIET_HOURS)
            warm = min(WARM_UP, instances)
            patients = seed_patients(url, tenant_id, warm + instances * rounds)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            app = create_app(bench_settings(url, queue), database_url=url)
            address = env.client.service_client.config.target_host
            worker = await asyncio.to_thread(start_worker_process, url, address, queue)
            cpu = WorkerCpu(worker.pid)
            measured: list[dict[str, float]] = []
            try:
                with PeakRss(worker.pid) as worker_rss:
                    async with app.router.lifespan_context(app):
                        app.state.temporal_client = env.client
                        # Not measured: a worker that has run some journeys and bare workflows, as one
                        # that has been serving has (the first round measured a cold one, 95-97 ms of
                        # CPU a journey against 57-77 in the rounds after it).
                        _, ids = await journeys_through_the_api(
                            app, env.client, tenant_id, patients[:warm], concurrency
                        )
                        sequence = await activity_sequence(env.client, ids[0])
                        await bare_workflows(env.client, queue, warm, sequence, concurrency)
                        for number in range(rounds):
                            print(f"round {number + 1} of {rounds}", flush=True)
                            cpu.since_last()
                            journey_seconds, ids = await journeys_through_the_api(
                                app,
                                env.client,
                                tenant_id,
                                patients[warm + number * instances : warm + (number + 1) * instances],
                                concurrency,
                            )
                            journey_cpu = cpu.since_last()
                            cpu.since_last()
                            bare_seconds = await bare_workflows(
                                env.client, queue, instances, sequence, concurrency
                            )
                            bare_cpu = cpu.since_last()
                            measured.append(
                                {
                                    "journey_rate": instances / journey_seconds,
                                    "bare_rate": instances / bare_seconds,
                                    "journey_cpu_ms": journey_cpu * 1000 / instances,
                                    "bare_cpu_ms": bare_cpu * 1000 / instances,
                                }
                            )
                            print(measured[-1], flush=True)
                completed = await completed_instances(url)
            finally:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 30)
    return {
        "instances": instances,
        "rounds": measured,
        "completed": float(completed),
        "activities": len(sequence),
        "regular": sequence.count("R"),
        "local": sequence.count("L"),
        "sequence": sequence,
        "worker_rss_mb": worker_rss.peak_mb,
    }


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=200, help="journeys (and bare workflows) per round")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--rounds", type=int, default=3, help="journey phase, then bare phase, this many times"
    )
    args = parser.parse_args()
    figures = asyncio.run(run(args.instances, args.concurrency, args.rounds))
    rounds = figures["rounds"]
    ratios = [r["journey_rate"] / r["bare_rate"] for r in rounds]
    cpu_ratios = [r["bare_cpu_ms"] / r["journey_cpu_ms"] for r in rounds]
    ratio = statistics.median(ratios)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(figures, f"ratio {ratio:.2f}")
    rows = []
    for number, (r, of_round) in enumerate(zip(rounds, ratios, strict=True), start=1):
        rows += [
            f"| {number} | journeys through the API | {args.instances} | {r['journey_rate']:.1f} "
            f"| {r['journey_cpu_ms']:.0f} | {of_round:.2f}x |",
            f"| {number} | bare Temporal workflows | {args.instances} | {r['bare_rate']:.1f} "
            f"| {r['bare_cpu_ms']:.0f} | |",
        ]
    total = args.instances * args.rounds + min(WARM_UP, args.instances)
    body = "\n".join(
        [
            "## Journey throughput",
            "",
            f"`python -m bench.journeys_bench --instances {args.instances} --concurrency {args.concurrency} "
            f"--rounds {args.rounds}` on {platform.machine()}, Python {platform.python_version()}: one "
            "Temporal dev server, one worker process (`bench.worker_process`) and the API in the benchmark's "
            "process, all on the machine that runs PostgreSQL. After a warm-up that is not measured "
            f"({min(WARM_UP, args.instances)} journeys and as many bare workflows: a worker that has been "
            "serving, not a cold one), each round starts its journey instances "
            "through the API and waits for them, then runs as many bare workflows: the two phases of a round "
            "share the machine's conditions, and the ratio is read per round. Each journey instance runs "
            f"{figures['activities']} activities: {figures['regular']} regular ones (one "
            f"SMS, one ticket) and {figures['local']} local ones (the stage bookkeeping), in the order "
            f"`{figures['sequence']}` (R regular, L local, read from its history). The SMS is recorded by "
            "the journey's activity, which passes "
            "it through the send gate (consent, quiet hours, frequency cap) and, allowed now and with no "
            "fallback to watch, hands it to the outbox provider itself; a message that must wait, fall back "
            "or retry gets its own `CommunicationDeliveryWorkflow` (none does here). The baseline is "
            "like-for-like: the bare workflow (`bench.bare_workflow`) runs no-op activities in the same "
            "order, as many regular and as many local ones, with the journey's own options (the same "
            "start-to-close timeout and retry policy, imported from `workflows.journey`, and the action "
            "heartbeat timeout on the regular ones), started with the same concurrency on the same server "
            "and worker. What it leaves out is the journey's own work: the API start (its transaction, audit "
            "record and outbox), the activities' database writes, the ticket's SLA workflow "
            "(`TicketSlaWorkflow`, one per ticket) and the search-attribute upserts. The benchmark's tenant "
            f"has no quiet hours, so a run at night measures the same work. Load average at the end: {load}.",
            "",
            "| round | run | instances | completed / s | worker CPU ms per workflow | ratio |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Ratio: **{ratio:.2f}x** of bare Temporal, the median of the rounds' "
            f"({', '.join(f'{x:.2f}' for x in ratios)}; goal: at least 0.5x); by the worker's CPU per "
            f"workflow, {statistics.median(cpu_ratios):.2f}x ({', '.join(f'{x:.2f}' for x in cpu_ratios)}). "
            f"{figures['completed']:.0f} of the {total} journeys completed (the warm-up's included). "
            "The worker process's resident "
            f"memory peaked at **{figures['worker_rss_mb']:.0f} MB** over the rounds (sampled every "
            "0.25 s, its children included; the worker-memory section measures it with 2,000 journeys). "
            "The worker's CPU per workflow is its process's CPU time (user and system) over the phase, "
            "divided by the phase's instances (a journey's share includes its ticket's SLA workflow).",
        ]
    )
    write_section("journeys", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
