"""Worker memory while journeys wait on timers, for each size of Temporal's sticky cache.

    .venv/bin/python -m bench.worker_memory [--instances 2000] [--cache-sizes 250,2000] [--concurrency 20]

One Temporal dev server, the API in the benchmark's process, one worker process (`bench.worker_process`, its
cache bounded by `PRM_WORKER_MAX_CACHED_WORKFLOWS` as the production worker's). N journey instances are
started through the API; each sends its welcome SMS, then waits on a 30-day timer. The worker's resident
memory (its children included) is sampled every 0.25 s. Then, for each cache size asked, a fresh worker
with that bound serves two rounds of one `position` query per instance: the first brings every instance
through the worker (a replay of its history each: the worker is new), the second is timed, and shows what
the bound costs: an instance still cached answers from memory, an evicted one is replayed first, as it is
when its timer fires or a signal comes. The figures replace the `worker-memory` section of BENCHMARKS.md.
Goal: at most 300 MB while 2,000 journeys wait on timers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from api.app import create_app
from bench.common import (
    NO_QUIET_HOURS,
    Latency,
    PeakRss,
    insert_tenant,
    scratch_database,
    temporal_dev_server,
    write_section,
)
from bench.journeys_bench import bench_settings, bounded, seed_patients, start_journeys, start_worker_process

WAITING_JOURNEY = {
    "name": "Bench waiting journey",
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
            "name": "Check-in",
            "order_index": 2,
            "trigger_event": {"type": "delay", "delay": {"days": 30}},
            "actions": [{"type": "send_message", "channel": "sms", "text": "How are you feeling?"}],
        },
    ],
}


async def query_round(client: Client, ids: list[str], concurrency: int) -> tuple[Latency, list[int]]:
    """One `position` query per instance; (their latencies, the positions)."""
    samples: list[float] = []

    def ask(instance: str) -> Callable[[], Awaitable[int]]:
        async def go() -> int:
            started = time.perf_counter()
            try:
                position = await client.get_workflow_handle(f"journey-instance-{instance}").query("position")
            except RPCError:  # its workflow task failed for now (on a starved machine: the deadlock
                return -1  # detector's 2 s), and the server retries it: asked again by the next round
            samples.append((time.perf_counter() - started) * 1000)
            return int(position)

        return go

    positions = await bounded(concurrency, [ask(i) for i in ids])
    return Latency("position query", samples), positions


async def until_all_wait(client: Client, ids: list[str], concurrency: int, deadline: float) -> None:
    """Return once every instance has sent its welcome and moved to the waiting stage (position 1)."""
    while True:
        _, positions = await query_round(client, ids, concurrency)
        if all(p >= 1 for p in positions):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(p < 1 for p in positions)} instances never reached their timer")
        await asyncio.sleep(2)


async def run(instances: int, cache_sizes: list[int], concurrency: int) -> dict[str, Any]:
    """Start the journeys under the first cache size, then measure every size; returns the figures."""
    env = await temporal_dev_server()
    rows: list[dict[str, float]] = []
    figures: dict[str, Any] = {"rows": rows}
    async with env:
        with scratch_database() as url:
            tenant_id = insert_tenant(url, settings=NO_QUIET_HOURS)
            patients = seed_patients(url, tenant_id, instances)
            queue = f"bench-mem-{uuid.uuid4().hex[:6]}"
            app = create_app(bench_settings(url, queue), database_url=url)
            address = env.client.service_client.config.target_host
            ids: list[str] = []
            for n, size in enumerate(cache_sizes):
                extra = {"PRM_WORKER_MAX_CACHED_WORKFLOWS": str(size)}
                worker = await asyncio.to_thread(start_worker_process, url, address, queue, extra)
                try:
                    with PeakRss(worker.pid) as rss:
                        if n == 0:
                            async with app.router.lifespan_context(app):
                                app.state.temporal_client = env.client
                                seconds, ids = await start_journeys(
                                    app, tenant_id, WAITING_JOURNEY, patients, concurrency
                                )
                            figures["start_seconds"] = seconds
                            await until_all_wait(env.client, ids, concurrency, time.monotonic() + 600)
                            figures["waiting_peak_mb"] = rss.peak_mb
                        await query_round(env.client, ids, concurrency)  # every instance through this worker
                        timed, positions = await query_round(env.client, ids, concurrency)
                        await asyncio.sleep(2)
                        settled = rss.last_mb
                    rows.append(
                        {
                            "size": size,
                            "peak_mb": rss.peak_mb,
                            "settled_mb": settled,
                            "p50": timed.p50,
                            "p95": timed.p95,
                            "seconds": sum(timed.samples_ms) / 1000,
                            "unanswered": sum(p < 0 for p in positions),
                        }
                    )
                    print(f"  cache {size}: {rows[-1]}", flush=True)
                finally:
                    worker.terminate()
                    await asyncio.to_thread(worker.wait, 30)
    return figures


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument(
        "--cache-sizes",
        default="250,2000",
        help="comma-separated PRM_WORKER_MAX_CACHED_WORKFLOWS values; the journeys start under the first",
    )
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.cache_sizes.split(",")]
    figures = asyncio.run(run(args.instances, sizes, args.concurrency))
    print(figures)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = [
        "| cache size | worker RSS peak MB | RSS settled MB | query p50 ms | query p95 ms | unanswered |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['size']:.0f} | {r['peak_mb']:.0f} | {r['settled_mb']:.0f} | {r['p50']:.1f} "
            f"| {r['p95']:.1f} | {r['unanswered']:.0f} |"
            for r in figures["rows"]
        ),
    ]
    intro = (
        f"`python -m bench.worker_memory --instances {args.instances} --cache-sizes {args.cache_sizes}` "
        f"on {platform.machine()}, Python {platform.python_version()} (load average at the end: {load}): "
        f"{args.instances} journey instances started through the API "
        f"({figures['start_seconds']:.0f} s), each waiting on a 30-day timer after its welcome SMS. Under "
        f"the first cache size the worker peaked at **{figures['waiting_peak_mb']:.0f} MB** while they "
        "started and settled on their timers (goal: at most 300 MB; resident memory sampled every "
        "0.25 s, children included). Then, for each size, a fresh worker with that "
        "`PRM_WORKER_MAX_CACHED_WORKFLOWS` answers one `position` query per instance twice: the first "
        "round brings every instance through it, the second is timed "
        f"({args.concurrency} in flight). A cached instance answers from memory; an evicted one is "
        "replayed from its history first, as it would be when its timer fires."
    )
    body = "\n".join(["## Worker memory", "", intro, "", *table])
    write_section("worker-memory", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
