"""Factories for scheduling tests: each test books inside its own tenant."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from core.database import bind_tenant
from domain.patients.models import Patient
from tests.polling import eventually

API = "/api/v1/prm"


def future(days: int = 3, hour: int = 10, minute: int = 0) -> datetime:
    """A whole time `days` from now (UTC), clear of today's edge cases."""
    base = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return base + timedelta(days=days)


@pytest.fixture
def make_patient(
    system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[..., Awaitable[Patient]]:
    """Insert a patient in this test's tenant (the patients API is another issue's)."""

    async def factory(tenant: uuid.UUID | None = None, **fields: Any) -> Patient:
        values: dict[str, Any] = {
            "mrn": f"MRN-{uuid.uuid4().hex[:8]}",
            "first_name": "Pat",
            "last_name": "Doe",
            "phone_primary": "+14155550100",
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


@pytest.fixture
def make_practitioner(client: httpx.AsyncClient, auth: dict) -> Callable[..., Awaitable[dict]]:
    """Create a practitioner through the API."""

    async def factory(headers: dict | None = None, **fields: Any) -> dict:
        body = {"first_name": "Ada", "last_name": "Lovelace", "speciality": "Cardiology", **fields}
        resp = await client.post(f"{API}/practitioners", json=body, headers=headers or auth)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return factory


@pytest.fixture
def make_slot(client: httpx.AsyncClient, auth: dict) -> Callable[..., Awaitable[dict]]:
    """Create a time slot through the API."""

    async def factory(
        practitioner_id: str,
        start: datetime,
        minutes: int = 30,
        headers: dict | None = None,
        **fields: Any,
    ) -> dict:
        body = {
            "practitioner_id": practitioner_id,
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=minutes)).isoformat(),
            **fields,
        }
        resp = await client.post(f"{API}/time-slots", json=body, headers=headers or auth)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return factory


@pytest.fixture
def book(client: httpx.AsyncClient, auth: dict) -> Callable[..., Awaitable[httpx.Response]]:
    """POST /appointments with the given fields."""

    async def call(headers: dict | None = None, **fields: Any) -> httpx.Response:
        body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
        return await client.post(f"{API}/appointments", json=body, headers=headers or auth)

    return call


@pytest.fixture
def settle(temporal_env, system_sessionmaker, tenant_id) -> Callable[[], Awaitable[None]]:
    """Wait until none of the test's message deliveries and waitlist backfills is in an activity.

    For tests that leave them running: `temporal_worker`'s teardown terminates what still runs, and one
    terminated in the middle of an activity can leave the shared time-skipping server unable to skip time
    for the tests that follow (its `sleep` never returns). A workflow asleep on a timer is safe to end."""
    from sqlalchemy import select

    from domain.communications.models import Communication
    from domain.scheduling.models import Appointment

    async def between_steps(workflow_id: str) -> bool:
        try:
            described = await temporal_env.client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return True  # never started
        running = described.status == WorkflowExecutionStatus.RUNNING
        return not (running and described.raw_description.pending_activities)

    async def wait() -> None:
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant_id)
            ids = [f"communication-{i}" for i in await session.scalars(select(Communication.id))]
            ids += [f"waitlist-backfill-{i}" for i in await session.scalars(select(Appointment.id))]
        for workflow_id in ids:
            await eventually(functools.partial(between_steps, workflow_id), f"{workflow_id} between steps")

    return wait
