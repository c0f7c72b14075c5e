"""Test fixtures: one throwaway database per run, one app, and a fresh tenant per test.

Every row is tenant-scoped, so tests isolate themselves by working in their own tenant rather than by
truncating tables. The one thing that reads across tenants is the worker's relay of workflow commands, so
the commands a test leaves pending are dropped when it ends (`no_pending_commands_left`). Set DATABASE_URL to
use a running PostgreSQL; otherwise an embedded one is started.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps
from api.app import create_app
from core.auth import Role, issue_dev_token
from core.database import make_engine, make_sessionmaker, mark_system
from core.embedded_db import start_embedded_postgres, to_libpq_url, to_sqlalchemy_url
from core.migrate import scratch_database
from core.settings import Settings
from domain.tenants.schemas import TenantCreate
from domain.tenants.service import create_tenant
from tests.cohorts.support import Clinic
from tests.communications.provider_support import (
    FakeProviders,
    SendGridKeys,
    configure_providers,
    make_sendgrid_keys,
    serve_fake_providers,
)
from tests.stack.cli_support import AUDIT_ANCHOR_FILE, AUDIT_HMAC_KEY
from tests.temporal_envs import app_workers, start_dev_server, start_time_skipping
from tests.tenants import TenantFactory

ROOT = Path(__file__).resolve().parent.parent

# Every app, engine and process of the suite (the workers and CLIs its tests start inherit this environment)
# keeps 10 connections and overflows to 20 (a connection past 10 is closed when returned): three xdist
# workers and the processes their tests start share one PostgreSQL of 100 connections, which the default of
# 20 kept per pool (tests/test_database_pool.py) exhausted ("too many clients" in the fifty-concurrent-
# booking tests). A value exported in the shell is kept.
os.environ.setdefault("PRM_DB_POOL_SIZE", "10")
os.environ.setdefault("PRM_DB_MAX_OVERFLOW", "10")


def _server_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return to_sqlalchemy_url(os.environ["DATABASE_URL"])
    return start_embedded_postgres(ROOT / ".prm" / "test-postgres")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on the configured server, migrated to head, dropped at the end of the run."""
    with scratch_database(_server_url(), "prm_test") as url:
        yield url


@pytest.fixture(scope="session")
def pending_commands_sweep(database_url: str) -> Iterator[Callable[[], None]]:
    """Drop the workflow commands pending in the run's database (one connection for the whole run). Rows a
    session still holds locked are skipped, so the sweep never waits."""
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:

        def sweep() -> None:
            conn.execute(
                "DELETE FROM workflow_commands WHERE id IN (SELECT id FROM workflow_commands"
                " WHERE delivered_at IS NULL FOR UPDATE SKIP LOCKED)"
            )

        yield sweep


@pytest.fixture(autouse=True)
def no_pending_commands_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's pending workflow commands end with it. A worker process's relay (`python worker.py`, as the
    crash tests run it) delivers every tenant's pending commands onto its own task queue, so what earlier
    tests left (messages recorded without a Temporal, campaign messages, held starts) would otherwise be
    started on a later test's worker: sent to its fake providers, taking its activity slots and its sender
    threads while they hold their answers (a send-crash round then timed out waiting for its own messages).
    Tests run one at a time on a run's database, so at the end of one, whatever is pending is its own."""
    if "database_url" not in request.fixturenames:
        yield
        return
    sweep = request.getfixturevalue("pending_commands_sweep")
    yield
    sweep()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """Settings for the app under test."""
    # Rate limits are off here (a suite makes many quick requests as one user); tests/test_rate_limits.py
    # turns them on. Its pools are the suite's (PRM_DB_POOL_SIZE and PRM_DB_MAX_OVERFLOW, above).
    return Settings(
        env="test",
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        rate_limits_enabled=False,
        audit_hmac_key=AUDIT_HMAC_KEY,
        audit_anchor_file=AUDIT_ANCHOR_FILE,
    )


@pytest.fixture(scope="session")
async def system_sessionmaker(
    database_url: str, settings: Settings
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions outside any tenant, for arranging data the way the CLI does."""
    engine = make_engine(database_url, settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings, database_url: str) -> AsyncIterator[object]:
    """The API, started once for the whole run."""
    application = create_app(settings, database_url=database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the `temporal` CLI from the venv), with the search attributes; one for
    the whole run (tests keep apart by using task queues of their own)."""
    async with await start_dev_server() as env:
        yield env


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of the test's own (it starts in a fraction of a second): each test's
    clock starts at now, so what a workflow computes from the database's times (an offer's expiry, an SLA's
    due time) holds, and time one test skips never moves another's."""
    async with await start_time_skipping() as env:
        yield env


@pytest.fixture
async def temporal_worker(
    temporal_env: WorkflowEnvironment,
    app: Any,
    settings: Settings,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Worker]:
    """Workers with every workflow and activity on a fresh task queue of the test's time-skipping server
    and on its control queue, and the API pointed at both (its requests deliver their workflow commands
    there)."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    previous_client = getattr(app.state, "temporal_client", None)
    app.state.temporal_client = temporal_env.client
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    try:
        async with app_workers(temporal_env.client, queue, deps) as (worker, _control):
            yield worker
    finally:
        app.state.temporal_client = previous_client


@pytest.fixture
def activity_deps(settings: Settings, system_sessionmaker: async_sessionmaker[AsyncSession]) -> ActivityDeps:
    """What the workflows' activities need: the settings and the test database."""
    return ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)


@pytest.fixture
def make_tenant(system_sessionmaker: async_sessionmaker[AsyncSession]) -> TenantFactory:
    """Create a tenant (as `prm tenant create` does) and return its id."""

    async def factory(name: str = "Test Clinic", timezone: str = "UTC") -> uuid.UUID:
        async with system_sessionmaker() as session:
            mark_system(session)
            tenant = await create_tenant(session, TenantCreate(name=name, timezone=timezone))
            await session.commit()
            return tenant.id

    return factory


@pytest.fixture
async def tenant_id(make_tenant: TenantFactory) -> uuid.UUID:
    """A fresh tenant for this test."""
    return await make_tenant()


@pytest.fixture
def clinic(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Clinic:
    """Writes patients and their records (appointments, journeys, opt-outs) into this test's tenant."""
    return Clinic(system_sessionmaker, tenant_id)


@pytest.fixture
def token_for(settings: Settings) -> Callable[..., str]:
    """Sign a development token."""

    def factory(tenant: uuid.UUID, role: Role | str = Role.COORDINATOR, sub: str = "tester") -> str:
        return issue_dev_token(settings, tenant_id=tenant, roles=[Role(role)], sub=sub)

    return factory


@pytest.fixture
def headers_for(token_for: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Authorization headers for a tenant and role."""

    def factory(tenant: uuid.UUID, role: Role | str = Role.COORDINATOR) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(tenant, role)}"}

    return factory


@pytest.fixture
def auth(tenant_id: uuid.UUID, headers_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Coordinator headers for this test's tenant."""
    return headers_for(tenant_id)


# ---- message providers (the fake Twilio and SendGrid of `tests/communications/provider_support.py`) -------


@pytest.fixture
def fake_providers() -> Iterator[FakeProviders]:
    """A fresh fake Twilio + SendGrid server on 127.0.0.1 for this test."""
    with serve_fake_providers() as fake:
        yield fake


@pytest.fixture(scope="session")
def sendgrid_keys() -> SendGridKeys:
    """A signing key for SendGrid's event webhook."""
    return make_sendgrid_keys()


@pytest.fixture
def providers_configured(
    fake_providers: FakeProviders,
    settings: Settings,
    sendgrid_keys: SendGridKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> FakeProviders:
    """Twilio and SendGrid credentials pointing the real SDKs at the fake server."""
    return configure_providers(fake_providers, settings, sendgrid_keys, monkeypatch)
