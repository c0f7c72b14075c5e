"""Temporal servers for tests: the one way a test gets one, from the binaries in the venv (nothing is
downloaded), each with the service's search attributes registered, as `make run` registers them.

The fixtures in tests/conftest.py hand them out: `dev_env`, one dev server for the whole run (tests keep
apart by task queue), and `temporal_env`, a time-skipping server of the test's own (its clock is the
test's alone). A test that stops and restarts Temporal starts its own dev server with `start_dev_server`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from core.temporal import SEARCH_ATTRIBUTES, dev_server_binary, test_server_binary
from worker import STRICT_WORKFLOW_RUNNER, task_queue_workers
from workflows.registry import ALL_WORKFLOWS


async def start_dev_server(*, port: int | None = None, db_file: Path | None = None) -> WorkflowEnvironment:
    """A dev server (the `temporal` CLI) on `port` (any free one by default), keeping its state in
    `db_file` when given, so a restart on the same port and file finds its workflows again."""
    return await WorkflowEnvironment.start_local(
        port=port,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_existing_path=str(dev_server_binary()),
        dev_server_database_filename=str(db_file) if db_file else None,
        dev_server_log_level="error",
    )


async def start_time_skipping() -> WorkflowEnvironment:
    """A time-skipping test server that accepts the service's search attributes (shut it down after)."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


@asynccontextmanager
async def app_workers(client: Client, queue: str, deps: ActivityDeps) -> AsyncIterator[list[Worker]]:
    """Every workflow and activity of the application polling `queue` and its control queue, as
    `worker.run_worker` polls them (`worker.task_queue_workers`): a campaign runs on the control queue. In
    Temporal's strict sandbox, where the worker runs none (`worker.WORKFLOW_RUNNER`): a workflow that calls
    the clock, randomness or another non-deterministic API is refused here."""
    async with AsyncExitStack() as stack:
        workers = task_queue_workers(
            client,
            queue,
            workflows=ALL_WORKFLOWS,
            activities=build_activities(deps),
            workflow_runner=STRICT_WORKFLOW_RUNNER,
        )
        for running in workers:
            await stack.enter_async_context(running)
        yield workers
