"""Fixtures for communications tests: patients, a local server that answers as Twilio and SendGrid do (so
the real SDKs can be pointed at it, including WhatsApp's 24-hour window and Content templates; it is built
in `provider_support.py`), provider credentials, and a time-skipping Temporal worker."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.patients.models import Patient
from tests.phones import unique_phone

API = "/api/v1/prm"


def tenant_sessions(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[[], AsyncSession]:
    """New sessions scoped to one tenant, one per transaction: what the send step (`delivery.deliver`)
    takes, as the activities give it."""

    def open_session() -> AsyncSession:
        session = sessionmaker()
        bind_tenant(session, tenant_id)
        return session

    return open_session


@pytest.fixture
def make_patient(
    system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[..., Awaitable[Patient]]:
    """Insert a patient in this test's tenant."""

    async def factory(tenant: uuid.UUID | None = None, **fields: Any) -> Patient:
        values: dict[str, Any] = {
            "mrn": f"MRN-{uuid.uuid4().hex[:8]}",
            "first_name": "Maria",
            "last_name": "Lopez",
            "phone_primary": unique_phone(),
            "email_primary": f"maria-{uuid.uuid4().hex[:6]}@example.test",
            "preferred_channel": "whatsapp",
        }
        values.update(fields)
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant or tenant_id)
            patient = Patient(**values)
            session.add(patient)
            await session.commit()
            return patient

    return factory


async def record_inbound(
    sessionmaker, tenant_id: uuid.UUID, patient: Patient, *, at: datetime, channel: str = "whatsapp"
) -> None:
    """Record a message the patient sent at `at` (it opens WhatsApp's 24-hour window)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        session.add(
            Communication(
                patient_id=patient.id,
                direction="inbound",
                channel=channel,
                sender=patient.phone_primary,
                message="Thanks",
                status="received",
                idempotency_key=f"inbound:test:{uuid.uuid4()}",
                created_at=at,
            )
        )
        await session.commit()


async def delivery_result(env, communication_id) -> Any:
    """The message's delivery workflow result (`DeliveryResult`), letting the test server skip time."""
    from workflows.communications import CommunicationDeliveryWorkflow

    handle = env.client.get_workflow_handle_for(
        CommunicationDeliveryWorkflow.run, f"communication-{communication_id}"
    )
    async with env.time_skipping_unlocked():
        return await handle.result()


async def next_local_time(env, zone: ZoneInfo, hour: int, minute: int) -> tuple[datetime, datetime]:
    """(the test server's time now, the next `hour:minute` after it) in `zone`."""
    now = (await env.get_current_time()).astimezone(zone)
    then = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return now, then if then > now else then + timedelta(days=1)
