"""Campaign enrolment: a cohort of N patients enrolled into a one-message journey, next to bare Temporal.

    .venv/bin/python -m bench.campaigns_bench [--patients 2000] [--concurrency 20]

One run, one Temporal dev server (the `temporal` CLI from the venv), one worker process
(`bench.worker_process`), the API in the benchmark's process: N patients are seeded in one tenant, a
one-message journey (one immediate stage sending a literal SMS, recorded by the outbox provider) and a
cohort of everyone (`{}`) are created through the API, then `POST /campaigns` launches the campaign (its
latency is timed). The clock runs from the launch until every member is enrolled (the campaign's counts,
polled through the API) and until every journey instance has completed (the database). Then, on the same
server and worker, N bare workflows are started in a loop from this process, each running as many regular
and as many local no-op activities as one enrolled journey instance ran (read from its history), beside
one bare workflow running as many regular activities as the campaign's own workflow ran (plan, one batch
per 100 members, finish). The figures replace the `campaigns` section of BENCHMARKS.md.

Goals (the issue's): enrolments/s at least 0.7x the bare workflows' completions/s; the launch answers
within 200 ms; the worker's resident memory stays under 300 MB while the campaign runs.
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
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from api.app import create_app
from bench.bare_workflow import BareInput, BareWorkflow
from bench.common import (
    NO_QUIET_HOURS,
    PeakRss,
    insert_tenant,
    scratch_database,
    temporal_dev_server,
    write_section,
)
from bench.journeys_bench import activity_mix, bench_settings, bounded, seed_patients, start_worker_process
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from domain.campaigns.plan import FINAL_STATUSES, campaign_workflow_id

JOURNEY = {
    "name": "Bench Campaign Journey",
    "journey_type": "benchmark",
    "stages": [
        {
            "name": "Invitation",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [
                {
                    "type": "send_message",
                    "channel": "sms",
                    "text": "Your annual check-up is due: reply to book.",
                }
            ],
        }
    ],
}
POLL_SECONDS = 0.5
GOAL_RATIO, GOAL_LAUNCH_MS, GOAL_RSS_MB = 0.7, 200.0, 300.0


def journey_instances(url: str, tenant_id: uuid.UUID) -> tuple[int, str | None]:
    """The tenant's completed journey instances, and the id of one of them (None while there is none)."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT count(*), min(id::text) FROM journey_instances "
            "WHERE tenant_id = %s AND status = 'completed'",
            (tenant_id,),
        ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


async def campaign_activities(client: Client, campaign_id: str) -> int:
    """How many activities the campaign's own workflow scheduled (its last run's history)."""
    history = await client.get_workflow_handle(campaign_workflow_id(campaign_id)).fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)


async def campaign_through_the_api(
    app: Any, url: str, tenant_id: uuid.UUID, patients: int, give_up_after: float
) -> dict[str, Any]:
    """Create the journey and the cohort, launch the campaign, and wait until every member is enrolled and
    every journey instance has completed; the launch latency, both durations and the final counts."""
    token = issue_dev_token(app.state.settings, tenant_id=tenant_id, roles=[Role.COORDINATOR])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:
        journey = await api.post("/api/v1/prm/journeys", json=JOURNEY, headers=headers)
        journey.raise_for_status()
        cohort = await api.post(
            "/api/v1/prm/cohorts", json={"name": "Everyone", "criteria": {}}, headers=headers
        )
        cohort.raise_for_status()
        body = {
            "name": "Bench campaign",
            "cohort_id": cohort.json()["id"],
            "journey_id": journey.json()["id"],
        }
        started = time.perf_counter()
        launched = await api.post("/api/v1/prm/campaigns", json=body, headers=headers)
        launch_ms = (time.perf_counter() - started) * 1000
        launched.raise_for_status()
        campaign_id = str(launched.json()["id"])
        print(f"  launch answered {launched.status_code} in {launch_ms:.1f} ms", flush=True)

        deadline = started + give_up_after
        while True:
            resp = await api.get(f"/api/v1/prm/campaigns/{campaign_id}", headers=headers)
            resp.raise_for_status()
            campaign = resp.json()
            counts = campaign["counts"]
            if counts["enrolled"] >= patients or campaign["status"] in FINAL_STATUSES:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"campaign not enrolled after {give_up_after:.0f} s: {campaign['status']} {counts}"
                )
            await asyncio.sleep(POLL_SECONDS)
        enrolled_seconds = time.perf_counter() - started
        print(
            f"  {counts['enrolled']} enrolled after {enrolled_seconds:.1f} s ({campaign['status']})",
            flush=True,
        )

    while (completed := await asyncio.to_thread(journey_instances, url, tenant_id))[0] < counts["enrolled"]:
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"{completed[0]} of {counts['enrolled']} journeys completed after {give_up_after:.0f} s"
            )
        await asyncio.sleep(POLL_SECONDS)
    completed_seconds = time.perf_counter() - started
    print(f"  {completed[0]} journeys completed after {completed_seconds:.1f} s", flush=True)
    return {
        "campaign_id": campaign_id,
        "launch_ms": launch_ms,
        "enrolled_seconds": enrolled_seconds,
        "completed_seconds": completed_seconds,
        "counts": counts,
        "status": campaign["status"],
        "completed": completed[0],
        "sample_instance": completed[1],
    }


async def bare_loop(
    client: Client, queue: str, count: int, mix: tuple[int, int], campaign_share: int, concurrency: int
) -> float:
    """Start `count` bare workflows of the journey's activity `mix` (regular, local) in a loop, and one of
    `campaign_share` regular activities for the campaign's own work; the seconds until all completed."""

    def start(data: BareInput) -> Callable[[], Awaitable[WorkflowHandle[Any, int]]]:
        return lambda: client.start_workflow(
            BareWorkflow.run, data, id=f"bench-bare-{uuid.uuid4().hex}", task_queue=queue
        )

    inputs = [BareInput(campaign_share)] + [BareInput(mix[0], local_activities=mix[1])] * count
    started = time.perf_counter()
    handles = await bounded(concurrency, [start(data) for data in inputs])
    await bounded(concurrency, [h.result for h in handles])
    return time.perf_counter() - started


async def run(patients: int, concurrency: int, give_up_after: float) -> dict[str, Any]:
    """The campaign, then the bare loop, on one server and one worker process; returns the figures."""
    env = await temporal_dev_server()
    async with env:
        with scratch_database() as url:
            tenant_id = insert_tenant(url, settings=NO_QUIET_HOURS)
            seed_patients(url, tenant_id, patients)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            app = create_app(bench_settings(url, queue), database_url=url)
            address = env.client.service_client.config.target_host
            worker = await asyncio.to_thread(start_worker_process, url, address, queue)
            try:
                with PeakRss(worker.pid) as worker_rss:
                    async with app.router.lifespan_context(app):
                        app.state.temporal_client = env.client
                        campaign = await campaign_through_the_api(
                            app, url, tenant_id, patients, give_up_after
                        )
                assert campaign["sample_instance"] is not None
                mix = await activity_mix(env.client, campaign["sample_instance"])
                share = await campaign_activities(env.client, campaign["campaign_id"])
                print(f"  per journey: {mix[0]} regular + {mix[1]} local; campaign: {share}", flush=True)
                with PeakRss(worker.pid) as bare_rss:
                    bare_seconds = await bare_loop(env.client, queue, patients, mix, share, concurrency)
                print(f"  {patients} bare workflows completed after {bare_seconds:.1f} s", flush=True)
            finally:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 30)
    enrolled = campaign["counts"]["enrolled"]
    return {
        **campaign,
        "regular": mix[0],
        "local": mix[1],
        "campaign_activities": share,
        "enrol_rate": enrolled / campaign["enrolled_seconds"],
        "journey_rate": campaign["completed"] / campaign["completed_seconds"],
        "bare_rate": patients / bare_seconds,
        "worker_rss_mb": worker_rss.peak_mb,
        "bare_rss_mb": bare_rss.peak_mb,
    }


def met(ok: bool) -> str:
    """The verdict on one goal."""
    return "met" if ok else "**not met**"


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=2000, help="the cohort's size")
    parser.add_argument("--concurrency", type=int, default=20, help="bare workflow starts in flight")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before the campaign is given up")
    args = parser.parse_args()
    f = asyncio.run(run(args.patients, args.concurrency, args.timeout))
    enrol_ratio, journey_ratio = f["enrol_rate"] / f["bare_rate"], f["journey_rate"] / f["bare_rate"]
    printed = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in f.items()}
    print(printed, f"ratio {enrol_ratio:.2f} (journeys completed {journey_ratio:.2f})")
    counts = f["counts"]
    skipped = ", ".join(f"{n} {why}" for why, n in counts["skipped"].items()) or "none"
    body = "\n".join(
        [
            "## Campaign enrolment",
            "",
            f"`python -m bench.campaigns_bench --patients {args.patients} --concurrency {args.concurrency}` "
            f"on {platform.machine()}, Python {platform.python_version()}: one Temporal dev server, one "
            "worker process (`bench.worker_process`) and the API in the benchmark's process, all on the "
            f"machine that runs PostgreSQL. A cohort of all {args.patients} patients of a tenant is "
            "launched, through `POST /campaigns`, into a one-message journey (one immediate stage, a literal "
            "SMS recorded by the outbox provider). The campaign's workflow enrols the members 100 per batch "
            f"activity ({f['campaign_activities']} activities scheduled in its history, read once the "
            "journeys had completed); each journey instance ran "
            f"{f['regular']} regular and {f['local']} local activities. The baseline "
            f"starts {args.patients} bare workflows in a loop from the benchmark's process "
            f"({args.concurrency} starts in flight), each running {f['regular']} regular and {f['local']} "
            f"local no-op activities, beside one running the campaign's {f['campaign_activities']} as "
            "regular no-ops; same server, same worker.",
            "",
            "| run | workflows | seconds | per second |",
            "| --- | --- | --- | --- |",
            f"| campaign: members enrolled | {counts['enrolled']} of {counts['members']} "
            f"(skipped: {skipped}) | {f['enrolled_seconds']:.1f} | {f['enrol_rate']:.1f} |",
            f"| campaign: journeys completed | {f['completed']} | {f['completed_seconds']:.1f} "
            f"| {f['journey_rate']:.1f} |",
            f"| bare Temporal workflows completed | {args.patients} | {args.patients / f['bare_rate']:.1f} "
            f"| {f['bare_rate']:.1f} |",
            "",
            f"- Enrolments: **{enrol_ratio:.2f}x** the bare workflows' rate (goal: at least "
            f"{GOAL_RATIO}x): {met(enrol_ratio >= GOAL_RATIO)}. Journeys completed: {journey_ratio:.2f}x.",
            f"- The launch request answered in **{f['launch_ms']:.0f} ms** (goal: within "
            f"{GOAL_LAUNCH_MS:.0f} ms): {met(f['launch_ms'] <= GOAL_LAUNCH_MS)}.",
            f"- The worker process's resident memory peaked at **{f['worker_rss_mb']:.0f} MB** while the "
            f"campaign ran (goal: under {GOAL_RSS_MB:.0f} MB): {met(f['worker_rss_mb'] < GOAL_RSS_MB)}; "
            f"{f['bare_rss_mb']:.0f} MB during the bare loop (sampled every 0.25 s, its children included).",
            "",
            "The clock runs from the launch request to the last member enrolled (the campaign's counts, "
            f"polled every {POLL_SECONDS} s through the API) and to the last journey instance completed "
            "(the database, polled as often); the bare loop's from its first start to its last completion.",
        ]
    )
    write_section("campaigns", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
