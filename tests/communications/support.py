"""Helpers shared by the communications tests and the tests of other directories that send messages: tenant
settings, the worker's gateway, and the messages a patient was sent."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from core.database import bind_tenant
from core.gateway import WorkflowGateway
from domain.communications.models import Communication
from domain.tenants.models import Tenant


def gateway_to(env, settings) -> WorkflowGateway:
    """The worker's task queue on the test server, as the API and activities reach it."""
    return WorkflowGateway.of_client(env.client, settings.temporal_task_queue)


async def set_tenant(system_sessionmaker, tenant_id, **settings) -> None:
    """Merge `settings` into the tenant's stored ones."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        tenant = await session.get(Tenant, tenant_id)
        tenant.settings = {**tenant.settings, **settings}
        await session.commit()


async def set_default_language(system_sessionmaker, tenant_id: uuid.UUID, language: str) -> None:
    """Give the tenant a default language, as `prm tenant create --language` stores it."""
    async with system_sessionmaker() as session:
        tenant = await session.get(Tenant, tenant_id)
        settings = {**tenant.settings, "default_language": language}
        await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(settings=settings))
        await session.commit()


async def outbound_messages(system_sessionmaker, tenant_id, patient_id) -> list[Communication]:
    """The messages sent to the patient, oldest first."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        stmt = (
            select(Communication)
            .where(Communication.patient_id == patient_id, Communication.direction == "outbound")
            .order_by(Communication.created_at)
        )
        return list((await session.scalars(stmt)).all())
