"""Integration clients for the tests: made through the domain service (as `prm integration create` does)
and traded for tokens at `POST /oauth/token` (as an EHR does)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import Actor
from core.client_credentials import Scope
from core.database import bind_tenant, mark_system
from domain.integrations import service
from domain.integrations.keys import JwksUriGuard
from tests.integrations.jwks_support import JwksServer

TEST_ACTOR = Actor(sub="cli:tester")


@dataclass(frozen=True)
class Credentials:
    """A client's id and one of its secrets."""

    tenant_id: uuid.UUID
    client_id: str
    secret: str
    secret_id: uuid.UUID


ClientFactory = Callable[..., Awaitable[Credentials]]


@pytest.fixture
def make_client(system_sessionmaker: async_sessionmaker[AsyncSession]) -> ClientFactory:
    """Create an integration client of a tenant with the given scopes."""

    async def factory(tenant: uuid.UUID, scopes: tuple[Scope, ...] = (Scope.FHIR,)) -> Credentials:
        async with system_sessionmaker() as session:
            mark_system(session)
            issued = await service.create_client(
                session, tenant_id=tenant, name="Test EHR", scopes=set(scopes), actor=TEST_ACTOR
            )
            await session.commit()
        return Credentials(tenant, issued.client.client_id, issued.secret, issued.secret_id)

    return factory


async def request_token(
    client: httpx.AsyncClient, creds: Credentials, scope: str | None = None
) -> httpx.Response:
    """`POST /oauth/token` with the client credentials grant, form-encoded."""
    form = {"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret}
    if scope is not None:
        form["scope"] = scope
    return await client.post("/oauth/token", data=form)


async def bearer_for(
    client: httpx.AsyncClient, creds: Credentials, scope: str | None = None
) -> dict[str, str]:
    """Authorization headers carrying a fresh token of `creds`."""
    response = await request_token(client, creds, scope)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def fhir_creds(tenant_id: uuid.UUID, make_client: ClientFactory) -> Credentials:
    """A FHIR client of this test's tenant."""
    return await make_client(tenant_id)


@pytest.fixture
async def fhir_auth(client: httpx.AsyncClient, fhir_creds: Credentials) -> dict[str, str]:
    """Headers with a FHIR token of this test's tenant."""
    return await bearer_for(client, fhir_creds)


@pytest.fixture
async def hl7_auth(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory
) -> dict[str, str]:
    """Headers with an HL7 token of this test's tenant."""
    return await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))


@pytest.fixture
def session_of(
    system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[[], AsyncSession]:
    """Sessions scoped to this test's tenant."""

    def factory() -> AsyncSession:
        session = system_sessionmaker()
        bind_tenant(session, tenant_id)
        return session

    return factory


@pytest.fixture
def jwks_server(app: Any) -> Iterator[JwksServer]:
    """A local HTTP server standing for a client's jwks_uri; the app under test may fetch from it while the
    test runs (PRM_SMART_JWKS_ALLOW_PRIVATE_ADDRESSES, which its guard is built from, is on meanwhile)."""
    served = JwksServer()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    cache = app.state.jwks_cache
    guard = cache.guard
    cache.guard = dataclasses.replace(guard, allow_private=True)
    try:
        yield served
    finally:
        cache.guard = guard
        served.server.shutdown()
        served.server.server_close()


@pytest.fixture
def make_keyed_client(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Any:
    """Register a client of this test's tenant with a JWK Set (or a jwks_uri) and no secret."""

    async def factory(
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        scopes: tuple[Scope, ...] = (Scope.FHIR,),
    ) -> str:
        async with system_sessionmaker() as session:
            mark_system(session)
            issued = await service.create_client(
                session,
                tenant_id=tenant_id,
                name="Backend service",
                scopes=set(scopes),
                actor=TEST_ACTOR,
                keys=service.ClientKeys(jwks=jwks, jwks_uri=jwks_uri),
                guard=JwksUriGuard(allow_private=True),  # the tests' jwks_uri is a server on loopback
            )
            await session.commit()
        assert issued.secret is None
        return issued.client.client_id

    return factory
