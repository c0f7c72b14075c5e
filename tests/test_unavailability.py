"""When the database or Temporal is unreachable a request answers 503 quickly, in JSON, with Retry-After; an
unexpected error is a JSON 500 naming the request; the client's keep-alive connection survives both; and
the service recovers by itself when the database returns.

Against real servers, no mocks: a PostgreSQL of this module's own that the tests stop and start, the API
served by uvicorn on a free port, and a Temporal dev server that goes away."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from api.app import create_app
from api.deps import RawSessionDep
from core.auth import Role, issue_dev_token
from core.database import mark_system
from core.embedded_db import to_libpq_url
from core.migrate import upgrade_to_head
from core.settings import Settings
from domain.tenants.schemas import TenantCreate
from domain.tenants.service import create_tenant
from tests.dedicated_postgres import DedicatedPostgres, dedicated_postgres, free_port
from tests.patients.support import patient_body
from tests.polling import eventually
from tests.temporal_envs import start_dev_server

API = "/api/v1/prm"
QUICKLY = 5.0  # seconds: what "answers quickly" means here (unbounded waits took 10 s and more)
TEMPORAL_WAIT = 1.0  # seconds: the app's Temporal bound here (the SDK alone retries for 10 s)
MANUAL_JOURNEY = {
    "name": "Follow-up",
    "stages": [{"name": "Call", "order_index": 1, "trigger_event": "manual"}],
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[DedicatedPostgres]:
    """The module's own PostgreSQL, migrated."""
    with dedicated_postgres() as server:
        upgrade_to_head(server.url)
        yield server


@dataclass
class Served:
    """The API on a real local port."""

    url: str
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Shut the server down as a SIGTERM would."""
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def serving(settings: Settings, database_url: str) -> AsyncIterator[Served]:
    """The API served by uvicorn on a free port, with two routes of the tests' own: one that fails
    unexpectedly and one whose query runs long enough to be cut off."""
    app = create_app(settings, database_url=database_url)

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/test/slow-query")
    async def slow_query(session: RawSessionDep) -> None:
        await session.execute(text("SELECT pg_sleep(30)"))

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    served = Served(f"http://127.0.0.1:{port}", app, server, asyncio.create_task(server.serve()))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.05)
    try:
        yield served
    finally:
        await served.stop()


def settings_for(postgres: DedicatedPostgres, temporal_address: str) -> Settings:
    """The app's settings, with a short Temporal bound so that a wait beyond it stands out."""
    return Settings(
        env="test",
        database_url=postgres.url,
        temporal_address=temporal_address,
        temporal_rpc_timeout_seconds=TEMPORAL_WAIT,
    )


@pytest.fixture(scope="module")
async def served(postgres: DedicatedPostgres) -> AsyncIterator[Served]:
    """The API on the module's database, with Temporal on a port where nothing listens."""
    async with serving(settings_for(postgres, f"127.0.0.1:{free_port()}"), postgres.url) as served:
        yield served


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """One client holding one keep-alive connection."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=served.url, timeout=30, limits=limits) as c:
        yield c


async def auth_for(app: FastAPI) -> dict[str, str]:
    """Coordinator headers for a new tenant of the app's database."""
    async with app.state.sessionmaker() as session:
        mark_system(session)
        tenant = await create_tenant(session, TenantCreate(name="Outage Clinic", timezone="UTC"))
        await session.commit()
    token = issue_dev_token(app.state.settings, tenant_id=tenant.id, roles=[Role.COORDINATOR], sub="tester")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def auth(postgres: DedicatedPostgres, served: Served) -> dict[str, str]:
    """A tenant of this test, created while the database is up."""
    if not postgres.is_running():  # an earlier test failed before it could start the server again
        await asyncio.to_thread(postgres.start)
    return await auth_for(served.app)


@contextlib.asynccontextmanager
async def database_down(postgres: DedicatedPostgres) -> AsyncIterator[None]:
    """PostgreSQL stopped for the block, started again after it."""
    await asyncio.to_thread(postgres.stop)
    try:
        yield
    finally:
        if not postgres.is_running():
            await asyncio.to_thread(postgres.start)


def client_port(resp: httpx.Response) -> int:
    """The client-side port of the connection that carried `resp`."""
    return int(resp.extensions["network_stream"].get_extra_info("client_addr")[1])


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """The response of `request` and the seconds it took."""
    started = time.monotonic()
    resp = await request
    return resp, time.monotonic() - started


def assert_unavailable(resp: httpx.Response, seconds: float) -> None:
    """A quick 503 in JSON that tells the client when to retry."""
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["retry-after"]) > 0
    assert resp.json()["detail"]
    assert seconds < QUICKLY


async def test_unexpected_error_is_a_json_500_naming_the_request_and_the_connection_stays_open(
    client: httpx.AsyncClient,
) -> None:
    failed = await client.get("/test/boom", headers={"X-Request-ID": "req-42.a"})
    assert failed.status_code == 500
    assert failed.json() == {"detail": "Internal error", "request_id": "req-42.a"}
    assert failed.headers["x-request-id"] == "req-42.a"
    assert "connection" not in failed.headers  # no `Connection: close`: the connection is kept
    port = client_port(failed)

    after = await client.get("/health")
    assert after.status_code == 200
    assert client_port(after) == port


async def test_a_request_without_a_sane_request_id_gets_a_new_one(client: httpx.AsyncClient) -> None:
    resp = await client.get("/test/boom", headers={"X-Request-ID": "two words\tand a tab"})
    request_id = resp.json()["request_id"]
    assert request_id != "two words\tand a tab"
    assert resp.headers["x-request-id"] == request_id
    assert (await client.get("/health")).headers["x-request-id"] not in ("", request_id)


async def test_database_down_answers_503_quickly_on_the_same_connection(
    client: httpx.AsyncClient, auth: dict[str, str], postgres: DedicatedPostgres
) -> None:
    before = await client.get(f"{API}/patients", headers=auth)
    assert before.status_code == 200
    port = client_port(before)
    async with database_down(postgres):
        listed, seconds = await timed(client.get(f"{API}/patients", headers=auth))
        assert_unavailable(listed, seconds)
        assert client_port(listed) == port
        created, seconds = await timed(client.post(f"{API}/patients", json=patient_body(), headers=auth))
        assert_unavailable(created, seconds)
        assert "database" in created.json()["detail"]
        assert client_port(created) == port
        ready, seconds = await timed(client.get("/ready"))
        assert ready.status_code == 503 and seconds < QUICKLY
        assert ready.json()["checks"]["database"] == "down"
    health = await client.get("/health")
    assert health.status_code == 200
    assert client_port(health) == port


async def test_a_query_cut_off_by_a_database_shutdown_answers_503(
    served: Served, client: httpx.AsyncClient, auth: dict[str, str], postgres: DedicatedPostgres
) -> None:
    slow = asyncio.create_task(timed(client.get("/test/slow-query")))

    async def sleeping() -> bool:
        async with await psycopg.AsyncConnection.connect(to_libpq_url(postgres.url)) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
            )
            row = await cur.fetchone()
            return bool(row and row[0])

    await eventually(sleeping, "the slow query to run", within=10)
    async with database_down(postgres):  # a fast shutdown ends the running query's session
        resp, seconds = await slow
        assert_unavailable(resp, seconds)


async def test_the_service_recovers_by_itself_when_the_database_returns(
    client: httpx.AsyncClient, auth: dict[str, str], postgres: DedicatedPostgres
) -> None:
    async with database_down(postgres):
        assert (await client.get(f"{API}/patients", headers=auth)).status_code == 503
    listed = await client.get(f"{API}/patients", headers=auth)
    assert listed.status_code == 200, listed.text
    created = await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    assert created.status_code == 201, created.text
    assert (await client.get("/ready")).json()["checks"]["database"] == "ok"


async def test_connections_killed_by_a_restart_cost_at_most_one_503(
    client: httpx.AsyncClient, auth: dict[str, str], postgres: DedicatedPostgres, served: Served
) -> None:
    """The pool does not ping each connection before use: after a restart nobody saw, the first request on a
    dead connection may answer 503, and that failure retires every pooled connection of before the restart."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=served.url, timeout=30, limits=limits) as many:
        answers = await asyncio.gather(*(many.get(f"{API}/patients", headers=auth) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    async with database_down(postgres):
        pass  # restarted with no request meanwhile: the pooled connections are all dead now
    first = await client.get(f"{API}/patients", headers=auth)
    assert first.status_code in (200, 503), first.text
    for _ in range(5):
        again = await client.get(f"{API}/patients", headers=auth)
        assert again.status_code == 200, again.text


async def journey_instance_body(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    """Define a journey and register a patient: the body that places the patient on the journey."""
    journey = await client.post(f"{API}/journeys", json=MANUAL_JOURNEY, headers=auth)
    assert journey.status_code == 201, journey.text
    patient = await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    assert patient.status_code == 201, patient.text
    return {"journey_id": journey.json()["id"], "patient_id": patient.json()["id"]}


async def test_unreachable_temporal_still_places_a_patient_on_a_journey_quickly(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The instance and its workflow's start commit together: 201 at once, the start left to the relay; only
    what needs Temporal's answer now (an advance) is a quick 503."""
    body = await journey_instance_body(client, auth)
    resp, seconds = await timed(client.post(f"{API}/journeys/instances", json=body, headers=auth))
    assert resp.status_code == 201, resp.text
    assert seconds < QUICKLY
    advance, seconds = await timed(
        client.post(
            f"{API}/journeys/instances/{resp.json()['id']}/advance", json={"order_index": 1}, headers=auth
        )
    )
    assert_unavailable(advance, seconds)
    assert "Temporal" in advance.json()["detail"]


async def test_temporal_going_away_bounds_the_wait_of_requests_that_need_it(
    postgres: DedicatedPostgres,
) -> None:
    env = await start_dev_server()
    address = env.client.service_client.config.target_host
    async with serving(settings_for(postgres, address), postgres.url) as served:
        headers = await auth_for(served.app)
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            body = await journey_instance_body(client, headers)
            assert (await client.get("/ready")).status_code == 200  # the app's client is connected
            await env.shutdown()

            started, seconds = await timed(
                client.post(f"{API}/journeys/instances", json=body, headers=headers)
            )
            assert started.status_code == 201, started.text  # saved with its start, for the relay
            assert seconds < 3 * TEMPORAL_WAIT
            ticket, seconds = await timed(
                client.post(f"{API}/tickets", json={"title": "Call"}, headers=headers)
            )
            assert ticket.status_code == 201  # saved with its SLA workflow's start
            assert seconds < 3 * TEMPORAL_WAIT
            advance = client.post(
                f"{API}/journeys/instances/{started.json()['id']}/advance",
                json={"order_index": 1},
                headers=headers,
            )
            resp, seconds = await timed(advance)
            assert_unavailable(resp, seconds)
            assert seconds < 3 * TEMPORAL_WAIT
            assert (await client.get("/ready")).status_code == 503
