"""Temporal servers for tests, from the binaries in the venv (nothing is downloaded), each with the
service's search attributes registered, as `make run` registers them on the dev server."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.temporal import SEARCH_ATTRIBUTES, test_server_binary


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


async def terminate_workflows(client: Client, workflow_ids: list[str]) -> None:
    """Terminate each workflow still running: one left mid-task without its worker would stop a shared
    time-skipping server from skipping time for the tests that follow."""
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("test over")
        except RPCError:
            continue  # finished already, or never started
