"""Changing a tenant's default message language after creation: `prm tenant set-language` and
`PATCH /tenant` (administrators), both validated, both in the audit trail; the active-tenant cache forgets
the changed row and serves the tenant on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import psycopg
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.auth import Role
from core.embedded_db import to_libpq_url
from tests.audit.support import chain_waiting
from tests.polling import eventually
from tests.stack.cli_support import create_tenant, prm
from tests.tenants import listening

TENANT = "/api/v1/prm/tenant"


def _stored_language(database_url: str, tenant_id: uuid.UUID) -> str | None:
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT settings->>'default_language' FROM tenants WHERE id = %s", (tenant_id,)
        ).fetchone()
    return row[0] if row else None


async def _audit_actions(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> list[tuple]:
    await chain_waiting(sessionmaker)
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AuditRecord.action, AuditRecord.user_sub, AuditRecord.resource_id)
            .where(AuditRecord.tenant_id == tenant_id, AuditRecord.resource_type == "tenants")
            .order_by(AuditRecord.seq)
        )
        return [tuple(row) for row in rows]


# ---- the command line -----------------------------------------------------------------------------------


async def test_set_language_stores_the_normalised_tag_prints_it_and_keeps_other_settings(
    database_url: str, system_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = create_tenant(database_url, "Clínica Norte")
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute(
            'UPDATE tenants SET settings = settings || \'{"waitlist": {"wave_size": 7}}\' WHERE id = %s',
            (tenant_id,),
        )

    result = prm(database_url, "tenant", "set-language", "--tenant-id", str(tenant_id), "--language", "ES-mx")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "es-MX\n"
    assert _stored_language(database_url, tenant_id) == "es-MX"
    await chain_waiting(system_sessionmaker)  # the command line leaves its record to an appender
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        [wave_size] = conn.execute(
            "SELECT settings->'waitlist'->>'wave_size' FROM tenants WHERE id = %s", (tenant_id,)
        ).fetchone()
        [(action, user)] = conn.execute(
            "SELECT action, user_sub FROM audit_records WHERE tenant_id = %s AND resource_type = 'tenants'",
            (tenant_id,),
        ).fetchall()
    assert wave_size == "7"
    assert action == "tenants.set_default_language" and user.startswith("cli:")


def test_set_language_refuses_a_bad_tag_and_an_unknown_tenant(database_url: str) -> None:
    tenant_id = create_tenant(database_url, "Clínica Sur")
    bad = prm(database_url, "tenant", "set-language", "--tenant-id", str(tenant_id), "--language", "klingon")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "is not a language tag" in " ".join(bad.stderr.split())
    assert _stored_language(database_url, tenant_id) == "en"

    unknown = uuid.uuid4()
    missing = prm(database_url, "tenant", "set-language", "--tenant-id", str(unknown), "--language", "es")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert f"no tenant with id {unknown}" in missing.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


# ---- the API --------------------------------------------------------------------------------------------


async def test_an_admin_changes_the_default_language_and_the_change_is_audited(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = headers_for(tenant_id, Role.ADMIN)
    before = await client.get(TENANT, headers=headers_for(tenant_id))
    assert (before.status_code, before.json()["default_language"]) == (200, "en")

    changed = await client.patch(TENANT, json={"default_language": "es-mx"}, headers=admin)

    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "id": str(tenant_id),
        "name": "Test Clinic",
        "timezone": "UTC",
        "default_language": "es-MX",
    }
    assert (await client.get(TENANT, headers=admin)).json()["default_language"] == "es-MX"
    assert await _audit_actions(system_sessionmaker, tenant_id) == [
        ("tenants.set_default_language", "tester", tenant_id)
    ]


async def test_only_an_admin_may_change_it_and_a_bad_tag_is_422_naming_the_field(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    coordinator = await client.patch(TENANT, json={"default_language": "es"}, headers=headers_for(tenant_id))
    assert coordinator.status_code == 403
    admin = headers_for(tenant_id, Role.ADMIN)
    for bad in ("klingon please", None, 42):
        refused = await client.patch(TENANT, json={"default_language": bad}, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "default_language"]
    assert (await client.get(TENANT, headers=admin)).json()["default_language"] == "en"
    assert await _audit_actions(system_sessionmaker, tenant_id) == []


async def test_the_active_tenant_cache_forgets_the_changed_row_and_serves_the_tenant_on(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    active = await listening(app)
    admin = headers_for(tenant_id, Role.ADMIN)
    assert (await client.get(TENANT, headers=admin)).status_code == 200
    assert tenant_id in active._active

    assert (await client.patch(TENANT, json={"default_language": "es"}, headers=admin)).status_code == 200

    async def forgotten() -> bool:
        return tenant_id not in active._active

    await eventually(forgotten, "the tenant row's notice", within=10)
    after = await client.get(TENANT, headers=admin)  # looked up again: still active
    assert (after.status_code, after.json()["default_language"]) == (200, "es")
