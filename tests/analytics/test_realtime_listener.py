"""The shared metrics listener: one LISTEN connection per process, fanned out to each tenant's streams,
coalescing bursts, surviving a killed connection and leaving nothing behind when streams or the app end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from core.embedded_db import to_libpq_url
from core.settings import Settings
from domain.analytics.realtime import MetricsListener, snapshot_json
from tests.analytics.conftest import ANALYTICS, Clinic, make_clinic, now
from tests.polling import eventually

LISTENERS_SQL = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND query = 'LISTEN prm_metrics'"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """The API on a real local port, and its metrics listener."""

    url: str
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def listener(self) -> MetricsListener:
        """The app's listener (exists once the app has started)."""
        listener: MetricsListener = self.app.state.metrics_listener
        return listener

    async def stop(self) -> None:
        """Shut the server down as a SIGTERM would."""
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def served(settings: Settings, database_url: str) -> AsyncIterator[Served]:
    """The API served by uvicorn on a free local port (streams need a real server)."""
    port = _free_port()
    app = create_app(settings, database_url=database_url)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    served = Served(f"http://127.0.0.1:{port}", app, server, asyncio.create_task(server.serve()))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.05)
    yield served
    if not served.task.done():
        await served.stop()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the served API, with room for many open streams."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=served.url, timeout=10, limits=limits) as c:
        yield c


@contextlib.asynccontextmanager
async def streaming(client: httpx.AsyncClient, token: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Open `/analytics/realtime` and collect its snapshots in the list yielded; disconnect on exit."""
    received: list[dict[str, Any]] = []

    async def read() -> None:
        headers = {"Accept": "text/event-stream"}
        params = {"access_token": token}
        async with client.stream("GET", f"{ANALYTICS}/realtime", params=params, headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    received.append(json.loads(line.removeprefix("data:")))

    task = asyncio.create_task(read())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen_backends(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(LISTENERS_SQL) or 0)


async def test_many_streams_of_two_tenants_share_one_listen_connection(
    served: Served,
    client: httpx.AsyncClient,
    clinic: Clinic,
    make_tenant: Callable,
    token_for: Callable,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = await make_tenant()
    tokens = [token_for(clinic.tenant_id), token_for(other)] * 10
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(streaming(client, token)) for token in tokens]
        await eventually(lambda: _all(len(s) >= 1 for s in streams), "every stream's first snapshot")
        assert served.listener.subscriber_count == 20
        assert await _listen_backends(system_sessionmaker) == 1


async def test_a_change_reaches_its_tenants_streams_and_no_other(
    client: httpx.AsyncClient, clinic: Clinic, make_tenant: Callable, token_for: Callable
) -> None:
    other = await make_clinic(await make_tenant(), clinic.sessionmaker)
    async with contextlib.AsyncExitStack() as stack:
        mine = [await stack.enter_async_context(streaming(client, token_for(clinic.tenant_id))) for _ in "ab"]
        theirs = [
            await stack.enter_async_context(streaming(client, token_for(other.tenant_id))) for _ in "ab"
        ]
        await eventually(lambda: _all(len(s) == 1 for s in mine + theirs), "every stream's first snapshot")

        await clinic.appointment(now())
        await eventually(lambda: _all(len(s) == 2 for s in mine), "our fresh snapshots")
        # Their change comes after ours on the one connection: once their streams have its snapshot, they
        # would also have had any our change had (wrongly) sent them.
        await other.appointment(now())
        await eventually(lambda: _all(len(s) == 2 for s in theirs), "their fresh snapshots")

    for s in mine:
        assert [(snap["tenant_id"], snap["appointments_today"]) for snap in s] == [
            (str(clinic.tenant_id), n) for n in (0, 1)
        ]
    for s in theirs:
        assert [(snap["tenant_id"], snap["appointments_today"]) for snap in s] == [
            (str(other.tenant_id), n) for n in (0, 1)
        ]


async def test_a_disconnected_stream_is_unsubscribed(
    served: Served, client: httpx.AsyncClient, clinic: Clinic, token_for: Callable
) -> None:
    token = token_for(clinic.tenant_id)
    async with streaming(client, token) as staying:
        async with streaming(client, token) as leaving:
            await eventually(lambda: _true(staying and leaving), "both first snapshots")
            assert served.listener.subscriber_count == 2
        await eventually(lambda: _true(served.listener.subscriber_count == 1), "the unsubscription")
        await clinic.appointment(now())
        await eventually(
            lambda: _true(staying[-1]["appointments_today"] == 1), "the remaining stream's update"
        )
    await eventually(lambda: _true(served.listener.subscriber_count == 0), "the last unsubscription")
    await eventually(lambda: _true(served.listener.running_tasks == 0), "the tenant's task ending")


async def test_the_listener_reconnects_after_its_backend_is_killed_and_refreshes_every_stream(
    served: Served,
    client: httpx.AsyncClient,
    clinic: Clinic,
    token_for: Callable,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = token_for(clinic.tenant_id)
    async with streaming(client, token) as first, streaming(client, token) as second:
        await eventually(lambda: _true(len(first) == 1 and len(second) == 1), "both first snapshots")
        killed = served.listener.backend_pid
        assert killed is not None
        async with system_sessionmaker() as session:
            assert await session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})

        await eventually(
            lambda: _true(len(first) >= 2 and len(second) >= 2), "the snapshot after reconnecting"
        )
        assert served.listener.backend_pid not in (None, killed)
        assert await _listen_backends(system_sessionmaker) == 1

        await clinic.appointment(now())  # and the new connection hears changes
        await eventually(lambda: _true(first[-1]["appointments_today"] == 1), "a change after reconnecting")
        await eventually(lambda: _true(second[-1]["appointments_today"] == 1), "a change after reconnecting")


async def test_open_streams_end_cleanly_when_the_server_shuts_down(
    served: Served, client: httpx.AsyncClient, clinic: Clinic, token_for: Callable
) -> None:
    listener = served.listener
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token_for(clinic.tenant_id)}"}
    async with client.stream("GET", f"{ANALYTICS}/realtime", headers=headers) as resp:
        lines = resp.aiter_lines()
        async for line in lines:
            if line.startswith("data:"):
                break
        stopping = asyncio.create_task(served.stop())
        rest = [line async for line in lines]  # the body is complete: no RemoteProtocolError
        await stopping
    assert not any(line.startswith("data:") for line in rest)
    assert listener.subscriber_count == 0
    assert listener.running_tasks == 0
    assert not listener.listening


# ---- the listener on its own, with a snapshot source the test can count and hold ------------------


class CountedSnapshots:
    """The real snapshot JSON, counting computations per tenant; a tenant's gate, when set, holds them."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.calls: Counter[uuid.UUID] = Counter()
        self.gates: dict[uuid.UUID, asyncio.Event] = {}

    async def __call__(self, tenant_id: uuid.UUID) -> str:
        self.calls[tenant_id] += 1
        if gate := self.gates.get(tenant_id):
            await gate.wait()
        return await snapshot_json(self.sessionmaker, tenant_id)


@pytest.fixture
def snapshots(system_sessionmaker: async_sessionmaker[AsyncSession]) -> CountedSnapshots:
    """The counting snapshot source."""
    return CountedSnapshots(system_sessionmaker)


@pytest.fixture
async def listener(database_url: str, snapshots: CountedSnapshots) -> AsyncIterator[MetricsListener]:
    """A listener of its own (not the app's), closed after the test."""
    metrics = MetricsListener(to_libpq_url(database_url), snapshots)
    yield metrics
    await metrics.close()


@contextlib.asynccontextmanager
async def subscribed(listener: MetricsListener, tenant_id: uuid.UUID) -> AsyncIterator[list[str]]:
    """Subscribe and collect the snapshot JSON received in the list yielded; unsubscribe on exit."""
    received: list[str] = []
    async with listener.subscribe(tenant_id) as subscription:

        async def read() -> None:
            async for snapshot in subscription:
                received.append(snapshot)

        task = asyncio.create_task(read())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_one_change_computes_one_snapshot_shared_by_the_tenants_streams(
    listener: MetricsListener, snapshots: CountedSnapshots, clinic: Clinic
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(subscribed(listener, clinic.tenant_id)) for _ in range(5)]
        await eventually(lambda: _all(len(s) == 1 for s in streams), "every first snapshot")
        assert snapshots.calls[clinic.tenant_id] <= 5
        snapshots.calls.clear()

        await clinic.appointment(now())
        await eventually(lambda: _all(len(s) == 2 for s in streams), "the fresh snapshot")
        assert snapshots.calls[clinic.tenant_id] == 1
        assert all(s[1] is streams[0][1] for s in streams)


async def test_a_burst_of_fifty_writes_yields_at_most_two_more_snapshots(
    listener: MetricsListener, snapshots: CountedSnapshots, clinic: Clinic, make_tenant: Callable
) -> None:
    other = await make_clinic(await make_tenant(), clinic.sessionmaker)
    async with (
        subscribed(listener, clinic.tenant_id) as stream,
        subscribed(listener, other.tenant_id) as probe,
    ):
        await eventually(lambda: _true(stream and probe), "both first snapshots")
        held = snapshots.gates[clinic.tenant_id] = asyncio.Event()  # a slow snapshot query, say

        for _ in range(50):
            await clinic.add(clinic.message("inbound", now()))
        # Notices arrive in commit order on the one connection: once the other tenant's stream has heard
        # of its change (not held up by ours), every one of our fifty notices has been taken in.
        await other.add(other.message("inbound", now()))
        await eventually(lambda: _true(len(probe) == 2), "the other tenant's snapshot")
        held.set()

        await eventually(lambda: _true(json.loads(stream[-1])["messages_today"] == 50), "all fifty")
        assert len(stream) <= 3  # the first, the one that was held, at most one for what came meanwhile


async def test_a_stream_that_does_not_read_keeps_only_the_newest_snapshot(
    listener: MetricsListener, clinic: Clinic
) -> None:
    async with listener.subscribe(clinic.tenant_id) as idle, subscribed(listener, clinic.tenant_id) as reader:
        await eventually(lambda: _true(reader), "the first snapshot")
        for count in (1, 2, 3):
            await clinic.add(clinic.message("inbound", now()))
            await eventually(lambda c=count: _true(json.loads(reader[-1])["messages_today"] == c), "it")

        newest = await asyncio.wait_for(anext(idle), 5)
        assert json.loads(newest)["messages_today"] == 3
        assert newest is reader[-1]


async def test_closing_the_listener_ends_its_streams(listener: MetricsListener, clinic: Clinic) -> None:
    async with listener.subscribe(clinic.tenant_id) as subscription:
        await asyncio.wait_for(anext(subscription), 5)
        await listener.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(subscription), 5)
    assert listener.running_tasks == 0
    assert not listener.listening


async def _true(value: object) -> bool:
    return bool(value)


async def _all(values: Any) -> bool:
    return all(values)
