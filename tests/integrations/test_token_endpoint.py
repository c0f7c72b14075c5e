"""`POST /oauth/token`: the client credentials grant an EHR uses to get a short-lived integration token."""

from __future__ import annotations

import base64
import uuid

import httpx
import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.client_credentials import Scope
from core.database import mark_system
from core.settings import Settings
from domain.integrations import service
from domain.integrations.models import IntegrationClientSecret
from tests.audit.support import chain_waiting
from tests.integrations.conftest import TEST_ACTOR, ClientFactory, Credentials, request_token


async def test_client_credentials_grant_issues_a_short_lived_token_of_the_clients_tenant_and_scopes(
    client: httpx.AsyncClient, fhir_creds: Credentials, settings: Settings
) -> None:
    response = await request_token(client, fhir_creds)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "fhir"
    assert 0 < body["expires_in"] <= 3600
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(
        body["access_token"],
        settings.jwt_secret,
        algorithms=["HS256"],
        audience=settings.integration_token_audience,
    )
    assert claims["tenant_id"] == str(fhir_creds.tenant_id)
    assert claims["sub"] == fhir_creds.client_id


async def test_http_basic_client_authentication_is_accepted(
    client: httpx.AsyncClient, fhir_creds: Credentials
) -> None:
    basic = base64.b64encode(f"{fhir_creds.client_id}:{fhir_creds.secret}".encode()).decode()
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )

    assert response.status_code == 200, response.text


async def test_a_wrong_secret_is_invalid_client_and_tells_nothing_more(
    client: httpx.AsyncClient, fhir_creds: Credentials
) -> None:
    wrong = Credentials(fhir_creds.tenant_id, fhir_creds.client_id, fhir_creds.secret + "x", uuid.uuid4())
    unknown = Credentials(fhir_creds.tenant_id, "prm_client_nobody", fhir_creds.secret, uuid.uuid4())

    for creds in (wrong, unknown):
        response = await request_token(client, creds)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


async def test_only_the_client_credentials_grant_is_supported(
    client: httpx.AsyncClient, fhir_creds: Credentials
) -> None:
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": fhir_creds.client_id,
            "client_secret": fhir_creds.secret,
        },
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_a_json_body_is_refused_as_an_invalid_request(
    client: httpx.AsyncClient, fhir_creds: Credentials
) -> None:
    response = await client.post(
        "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": fhir_creds.client_id},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_scope_beyond_the_clients_own_is_refused(
    client: httpx.AsyncClient, fhir_creds: Credentials
) -> None:
    assert (await request_token(client, fhir_creds, scope="fhir hl7")).json()["error"] == "invalid_scope"
    assert (await request_token(client, fhir_creds, scope="admin")).json()["error"] == "invalid_scope"
    narrowed = await request_token(client, fhir_creds, scope="fhir")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "fhir"


async def test_a_client_of_an_inactive_tenant_gets_no_token(
    client: httpx.AsyncClient,
    fhir_creds: Credentials,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from domain.tenants.models import Tenant

    async with system_sessionmaker() as session:
        mark_system(session)
        tenant = await session.get(Tenant, fhir_creds.tenant_id)
        assert tenant is not None
        tenant.is_active = False
        await session.commit()

    assert (await request_token(client, fhir_creds)).status_code == 401


async def test_secrets_are_stored_hashed_and_every_change_is_audited(
    make_client: ClientFactory,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    creds = await make_client(tenant_id, (Scope.FHIR, Scope.HL7))
    async with system_sessionmaker() as session:
        mark_system(session)
        rotated = await service.rotate_secret(
            session, tenant_id=tenant_id, client_id=creds.client_id, actor=TEST_ACTOR
        )
        await service.revoke(
            session,
            tenant_id=tenant_id,
            client_id=creds.client_id,
            secret_id=creds.secret_id,
            actor=TEST_ACTOR,
        )
        await service.revoke(session, tenant_id=tenant_id, client_id=creds.client_id, actor=TEST_ACTOR)
        await session.commit()
        await chain_waiting(system_sessionmaker)
        stored = (await session.scalars(select(IntegrationClientSecret.secret_hash))).all()
        actions = (
            await session.scalars(
                select(AuditRecord.action).where(AuditRecord.tenant_id == tenant_id).order_by(AuditRecord.seq)
            )
        ).all()

    assert creds.secret not in stored and rotated.secret not in stored
    assert actions == [
        "integration_clients.create",
        "integration_clients.rotate",
        "integration_clients.revoke_secret",
        "integration_clients.revoke",
    ]


async def test_another_tenants_client_cannot_be_rotated(
    make_client: ClientFactory,
    make_tenant: object,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from core.errors import NotFound

    creds = await make_client(tenant_id)
    other = await make_tenant()  # type: ignore[operator]
    async with system_sessionmaker() as session:
        mark_system(session)
        try:
            await service.rotate_secret(session, tenant_id=other, client_id=creds.client_id, actor=TEST_ACTOR)
        except NotFound:
            pass
        else:
            raise AssertionError("a client was rotated through another tenant")


async def test_an_integration_token_with_a_string_exp_or_a_century_to_live_is_refused(
    client: httpx.AsyncClient, fhir_creds: Credentials, settings: Settings
) -> None:
    """The same time checks as coordinator tokens: a correctly signed token is not enough."""
    issued = (await request_token(client, fhir_creds)).json()["access_token"]
    claims = jwt.decode(
        issued, settings.jwt_secret, algorithms=["HS256"], audience=settings.integration_token_audience
    )
    string_exp = {**claims, "exp": str(claims["exp"])}
    century = {**claims, "exp": claims["iat"] + 100 * 365 * 24 * 3600}

    answers = {}
    for name, forged in (("as issued", claims), ("string exp", string_exp), ("century", century)):
        token = jwt.encode(forged, settings.jwt_secret, algorithm="HS256")
        answers[name] = (
            await client.get("/fhir/R4/Patient", headers={"Authorization": f"Bearer {token}"})
        ).status_code

    assert answers == {"as issued": 200, "string exp": 401, "century": 401}
