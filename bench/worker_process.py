"""The journey and campaign benchmarks' worker, in a process of its own as in production.

    DATABASE_URL=... TEMPORAL_ADDRESS=... PRM_TEMPORAL_TASK_QUEUE=... python -m bench.worker_process

Runs the campaign, journey and message delivery workflows with their real activities, and the bare baseline
workflow, on one task queue until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

from temporalio.worker import Worker

from activities import ActivityDeps
from activities.campaigns import CampaignActivities
from activities.communications import CommunicationActivities
from activities.journeys import JourneyActivities
from bench.bare_workflow import BareWorkflow, noop
from core.database import make_engine, make_sessionmaker, resolve_database_url
from core.process import freeze_startup_objects
from core.settings import get_settings
from core.temporal import connect_temporal
from workflows.campaigns import CampaignWorkflow
from workflows.communications import CommunicationDeliveryWorkflow
from workflows.journey import JourneyInstanceWorkflow


async def serve() -> None:
    """Poll the configured task queue until told to stop."""
    settings = get_settings()
    engine = make_engine(resolve_database_url(settings), settings)
    deps = ActivityDeps(settings=settings, sessionmaker=make_sessionmaker(engine))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        await connect_temporal(settings),
        task_queue=settings.temporal_task_queue,
        workflows=[CampaignWorkflow, JourneyInstanceWorkflow, CommunicationDeliveryWorkflow, BareWorkflow],
        activities=[
            *CampaignActivities(deps).all(),
            *JourneyActivities(deps).all(),
            *CommunicationActivities(deps).all(),
            noop,
        ],
        max_concurrent_activities=settings.worker_activities_at_once,  # as the production worker
        max_cached_workflows=settings.worker_max_cached_workflows,
    )
    freeze_startup_objects()  # as the production worker does (`worker.main`)
    async with worker:
        print("worker ready", flush=True)
        await stop.wait()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(serve())
