"""The app wired to a Temporal environment: a worker running the journey workflows and activities on a fresh
task queue, and the gateway the dispatcher and the relay reach Temporal through. Shared by the journey
tests and the tests of other directories that run journeys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps
from activities.communications import CommunicationActivities
from activities.journeys import JourneyActivities
from activities.tickets import TicketActivities
from core.gateway import WorkflowGateway
from core.settings import Settings
from workflows.communications import CommunicationDeliveryWorkflow
from workflows.journey import JourneyInstanceWorkflow
from workflows.tickets import TicketSlaWorkflow


@asynccontextmanager
async def journey_worker(
    client: Client, deps: ActivityDeps, task_queue: str, journey_activities: JourneyActivities | None = None
) -> AsyncIterator[Worker]:
    """A worker running the journey workflows and activities on `task_queue`, with the delivery workflow
    that every journey message goes through and the SLA workflow of the tickets a journey opens (both
    started by the commands those activities record; `journey_activities`: a test's own variant of them)."""
    journeys = journey_activities or JourneyActivities(deps)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyInstanceWorkflow, CommunicationDeliveryWorkflow, TicketSlaWorkflow],
        activities=[*journeys.all(), *CommunicationActivities(deps).all(), *TicketActivities(deps).all()],
    )
    async with worker:
        yield worker


@dataclass
class Wired:
    """The app wired to a Temporal environment with a worker polling a fresh task queue."""

    env: WorkflowEnvironment
    task_queue: str
    settings: Settings


@asynccontextmanager
async def app_on(
    app: Any,
    env: WorkflowEnvironment,
    deps: ActivityDeps,
    journey_activities: JourneyActivities | None = None,
    client: Client | None = None,
) -> AsyncIterator[Wired]:
    """Point the app at `env` on a fresh task queue with a worker running; restore the app afterwards.

    `client`: one of `env`'s with interceptors of its own (the app and the worker both use it)."""
    task_queue = f"journeys-{uuid.uuid4().hex[:8]}"
    client = client or env.client
    saved = (app.state.settings, app.state.temporal_client)
    settings = app.state.settings.model_copy(update={"temporal_task_queue": task_queue})
    app.state.settings, app.state.temporal_client = settings, client
    try:
        async with journey_worker(client, deps, task_queue, journey_activities):
            yield Wired(env=env, task_queue=task_queue, settings=settings)
    finally:
        app.state.settings, app.state.temporal_client = saved


def gateway_to(client: Client, task_queue: str) -> WorkflowGateway:
    """How the dispatcher (and the relay) reach Temporal: the test environment's client."""
    return WorkflowGateway.of_client(client, task_queue)
