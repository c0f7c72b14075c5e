"""Helpers shared by the communications tests and the tests of other directories that send messages: tenant
settings, the worker's gateway, recording a message, and the messages a patient was sent."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from core.database import bind_tenant, run_after_commit_jobs
from core.gateway import WorkflowGateway, bind_gateway
from domain.communications import dispatch, service
from domain.communications.models import Communication
from domain.enums import Channel
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


async def record_sms(
    system_sessionmaker,
    tenant_id,
    patient,
    *,
    gateway: WorkflowGateway | None = None,
    key: str | None = None,
    commit: bool = True,
    held: bool = False,
) -> uuid.UUID:
    """Record an SMS as every caller does (`held`: as a journey's send step, its delivery start held),
    committing (then running what follows the commit, as a request and an activity do: with `gateway`, its
    start is delivered) or rolling back; the message's id."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        if gateway is not None:
            bind_gateway(session, gateway)
        if held:
            dispatch.hold_starts(session)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=Channel.SMS,
            message="Your results are ready.",
            idempotency_key=key or f"test:{uuid.uuid4()}",
        )
        if commit:
            await session.commit()
            await run_after_commit_jobs(session)
        else:
            await session.rollback()
        return result.communication.id
