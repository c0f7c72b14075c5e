"""The active-tenant check is cached per process, and a tenant deactivated (by anyone, in any process) is
refused as soon as PostgreSQL's notice of the change arrives; without the notices nothing is cached."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import mark_system
from core.embedded_db import to_libpq_url
from domain.tenants.active import ActiveTenants
from tests.dedicated_postgres import free_port
from tests.polling import eventually
from tests.tenants import listening

URL = "/api/v1/prm/practitioners"


async def set_active(sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID, active: bool) -> None:
    """Change the tenant's `is_active` with plain SQL, as an operator would (not through the API)."""
    async with sessionmaker() as session:
        mark_system(session)
        await session.execute(
            text("UPDATE tenants SET is_active = :active WHERE id = :id"), {"active": active, "id": tenant}
        )
        await session.commit()


async def test_a_tenant_deactivated_after_its_requests_were_served_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    active = await listening(app)
    headers = headers_for(tenant_id)
    assert (await client.get(URL, headers=headers)).status_code == 200
    assert tenant_id in active._active  # the next requests are served without reading the tenant

    await set_active(system_sessionmaker, tenant_id, False)

    async def refused() -> bool:
        return (await client.get(URL, headers=headers)).status_code == 401

    await eventually(refused, "the deactivated tenant to be refused", within=10)


async def test_a_reactivated_tenant_is_served_again_at_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await listening(app)
    headers = headers_for(tenant_id)
    await set_active(system_sessionmaker, tenant_id, False)
    assert (await client.get(URL, headers=headers)).status_code == 401
    await set_active(system_sessionmaker, tenant_id, True)
    assert (await client.get(URL, headers=headers)).status_code == 200  # "inactive" is never cached


async def test_the_cache_remembers_an_active_tenant_and_forgets_it_on_its_notice(
    app: FastAPI,
    tenant_id: uuid.UUID,
    database_url: str,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    active = ActiveTenants(to_libpq_url(database_url))
    active.start()
    try:
        async with asyncio.timeout(15):
            await active.wait_listening()
        async with system_sessionmaker() as session:
            mark_system(session)
            assert await active.is_active(session, tenant_id)
        assert tenant_id in active._active
        await set_active(system_sessionmaker, tenant_id, False)

        async def forgotten() -> bool:
            return tenant_id not in active._active

        await eventually(forgotten, "the notice to arrive", within=10)
        async with system_sessionmaker() as session:
            mark_system(session)
            assert not await active.is_active(session, tenant_id)
    finally:
        await active.close()


async def test_without_its_listen_connection_the_cache_asks_the_database_every_time(
    tenant_id: uuid.UUID, system_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    active = ActiveTenants(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    active.start()
    try:
        async with system_sessionmaker() as session:
            mark_system(session)
            assert await active.is_active(session, tenant_id)
        assert not active.listening and tenant_id not in active._active
        await set_active(system_sessionmaker, tenant_id, False)
        async with system_sessionmaker() as session:
            mark_system(session)
            assert not await active.is_active(session, tenant_id)  # no notice needed: nothing cached
    finally:
        await active.close()
