"""`/integration-clients`: administrators register EHR clients, rotate and revoke their secrets, through the
API as through `prm integration`; every change is audited."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.database import mark_system
from tests.integrations.conftest import Credentials, request_token

BASE = "/api/v1/prm/integration-clients"


async def test_an_admin_registers_rotates_and_revokes_a_client_through_the_api(
    app: Any,
    client: httpx.AsyncClient,
    headers_for: Any,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = headers_for(tenant_id, "admin")
    created = await client.post(BASE, json={"name": "Epic", "scopes": ["fhir", "hl7"]}, headers=admin)
    assert created.status_code == 201, created.text
    first = created.json()
    creds = Credentials(tenant_id, first["client_id"], first["client_secret"], uuid.UUID(first["secret_id"]))
    assert (await request_token(client, creds)).status_code == 200

    rotated = await client.post(f"{BASE}/{first['client_id']}/secrets", headers=admin)
    assert rotated.status_code == 201
    second = rotated.json()
    revoked = await client.delete(f"{BASE}/{first['client_id']}/secrets/{first['secret_id']}", headers=admin)
    assert revoked.status_code == 200
    assert (await request_token(client, creds)).status_code == 401
    new = Credentials(tenant_id, first["client_id"], second["client_secret"], uuid.UUID(second["secret_id"]))
    assert (await request_token(client, new)).status_code == 200

    listed = (await client.get(BASE, headers=admin)).json()
    assert [c["client_id"] for c in listed] == [first["client_id"]]
    assert first["client_secret"] not in str(listed) and second["client_secret"] not in str(listed)
    assert {s["secret_id"]: s["revoked_at"] is not None for s in listed[0]["secrets"]} == {
        first["secret_id"]: True,
        second["secret_id"]: False,
    }

    gone = await client.delete(f"{BASE}/{first['client_id']}", headers=admin)
    assert gone.status_code == 200 and gone.json()["revoked_at"]
    assert (await request_token(client, new)).status_code == 401
    assert (await client.post(f"{BASE}/{first['client_id']}/secrets", headers=admin)).status_code == 409

    # Each change's record committed with it to `audit_pending`; the API's appender chains it afterwards,
    # in the background: wait for that round before reading the trail.
    await app.state.audit_buffer.flush()
    async with system_sessionmaker() as session:
        mark_system(session)
        rows = (
            await session.execute(
                select(AuditRecord.action, AuditRecord.user_sub)
                .where(AuditRecord.tenant_id == tenant_id, AuditRecord.resource_type == "integration_clients")
                .order_by(AuditRecord.seq)
            )
        ).all()
    assert [r.action for r in rows] == [
        "integration_clients.create",
        "integration_clients.rotate",
        "integration_clients.revoke_secret",
        "integration_clients.revoke",
    ]
    assert {r.user_sub for r in rows} == {"tester"}


async def test_only_admins_manage_clients_and_only_their_own_tenants(
    client: httpx.AsyncClient, headers_for: Any, tenant_id: uuid.UUID, make_tenant: Any
) -> None:
    coordinator = headers_for(tenant_id, "coordinator")
    assert (await client.post(BASE, json={"name": "Epic"}, headers=coordinator)).status_code == 403
    assert (await client.get(BASE, headers=coordinator)).status_code == 403

    other_admin = headers_for(await make_tenant(name="Other"), "admin")
    created = (await client.post(BASE, json={"name": "Epic"}, headers=headers_for(tenant_id, "admin"))).json()
    assert (
        await client.post(f"{BASE}/{created['client_id']}/secrets", headers=other_admin)
    ).status_code == 404
    assert (await client.delete(f"{BASE}/{created['client_id']}", headers=other_admin)).status_code == 404
    assert (await client.get(BASE, headers=other_admin)).json() == []


async def test_a_client_needs_a_name_and_known_scopes(
    client: httpx.AsyncClient, headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    for body in ({"name": ""}, {"name": "Epic", "scopes": []}, {"name": "Epic", "scopes": ["admin"]}):
        assert (await client.post(BASE, json=body, headers=admin)).status_code == 422
