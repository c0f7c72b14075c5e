"""Journey test fixtures: the time-skipping Temporal environment (the dev server, `dev_env`, is shared by the
whole suite: `tests/conftest.py`), workers running the real workflow and activities against the test
database, and small data factories.

Both environments start from the binaries in the venv (nothing is downloaded). Each test that runs
workflows gets a fresh task queue, and the app is pointed at the environment for that test only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from core.database import bind_tenant
from domain.communications.models import Communication
from domain.journeys.models import JourneyInstance, JourneyInstanceStage
from domain.journeys.trigger_dispatch import TriggerDispatcher
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant
from domain.tickets.models import Ticket, TicketEvent
from tests.journeys.app_support import Wired, app_on, gateway_to

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = "/api/v1/prm/journeys"
INSTANCES = "/api/v1/prm/journeys/instances"
LEGACY_INSTANCES = "/api/v1/prm/instances"
WAITING_STAGE = {"name": "Call the patient", "order_index": 0, "trigger_event": "manual", "actions": []}


@pytest.fixture
async def on_dev_server(
    app: Any, dev_env: WorkflowEnvironment, activity_deps: ActivityDeps
) -> AsyncIterator[Wired]:
    """The app on the dev server, a worker on a fresh task queue."""
    async with app_on(app, dev_env, activity_deps) as wired:
        yield wired


@pytest.fixture
async def on_time_skipping(
    app: Any, temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps
) -> AsyncIterator[Wired]:
    """The app on the time-skipping server, a worker on a fresh task queue."""
    async with app_on(app, temporal_env, activity_deps) as wired:
        yield wired


@pytest.fixture
def dispatcher(
    on_dev_server: Wired, system_sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> TriggerDispatcher:
    """The worker's dispatcher, on this test's tenant and task queue."""
    return TriggerDispatcher(
        system_sessionmaker,
        gateway_to(on_dev_server.env.client, on_dev_server.task_queue),
        tenant_id=clinic.tenant_id,
    )


@pytest.fixture
def make_journey(client: httpx.AsyncClient, auth: dict[str, str]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a journey (one manual stage, so its instances stay active) through the API."""

    async def factory(**fields: Any) -> dict[str, Any]:
        body = {"name": "Journey", "stages": [WAITING_STAGE], **fields}
        resp = await client.post(JOURNEYS, json=body, headers=auth)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return factory


# ---- data ------------------------------------------------------------------------------------------


@dataclass
class Clinic:
    """A tenant with one patient (and a practitioner for appointments), and helpers to read its rows."""

    tenant_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    sessionmaker: async_sessionmaker[AsyncSession]

    async def session(self) -> AsyncSession:
        """A session bound to this tenant."""
        session = self.sessionmaker()
        bind_tenant(session, self.tenant_id)
        return session

    async def add_appointment(self, start: datetime) -> uuid.UUID:
        """Book an appointment for the patient at `start`."""
        async with await self.session() as session:
            appointment = Appointment(
                patient_id=self.patient_id,
                practitioner_id=self.practitioner_id,
                start_time=start,
                end_time=start + timedelta(minutes=30),
            )
            session.add(appointment)
            await session.commit()
            return appointment.id

    async def add_patient(self, **fields: Any) -> uuid.UUID:
        """Another patient of this clinic."""
        async with await self.session() as session:
            patient = Patient(
                **{"mrn": f"MRN-{uuid.uuid4().hex[:8]}", "first_name": "Ana", "last_name": "Lima", **fields}
            )
            session.add(patient)
            await session.commit()
            return patient.id

    async def communications(self, instance_id: uuid.UUID | str) -> list[Communication]:
        """The instance's messages, oldest first."""
        async with await self.session() as session:
            stmt = (
                select(Communication)
                .where(Communication.journey_instance_id == uuid.UUID(str(instance_id)))
                .order_by(Communication.created_at)
            )
            return list((await session.scalars(stmt)).all())

    async def tickets(self, instance_id: uuid.UUID | str) -> list[Ticket]:
        """The instance's tickets."""
        async with await self.session() as session:
            stmt = select(Ticket).where(Ticket.journey_instance_id == uuid.UUID(str(instance_id)))
            return list((await session.scalars(stmt)).all())

    async def opened_priority(self, ticket: Ticket) -> str:
        """The priority `ticket` was opened with. Its SLA workflow (started by the command its opening
        recorded) runs on a time-skipping server's clock, days ahead of the database's when a journey's
        timeout filed it, so it may have escalated it already: then its first escalation says what the
        priority was (and the ticket's is the escalated one)."""
        async with await self.session() as session:
            escalations = list(
                await session.scalars(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "escalated")
                    .order_by(TicketEvent.created_at)
                )
            )
        if not escalations:
            return ticket.priority
        assert ticket.priority == escalations[-1].details["priority_to"]
        return str(escalations[0].details["priority_from"])

    async def instance(self, instance_id: uuid.UUID | str) -> JourneyInstance:
        """The instance row as committed now."""
        async with await self.session() as session:
            row = await session.scalar(
                select(JourneyInstance).where(JourneyInstance.id == uuid.UUID(str(instance_id)))
            )
            assert row is not None
            return row

    async def stages(self, instance_id: uuid.UUID | str) -> list[JourneyInstanceStage]:
        """The instance's stage rows, in order."""
        async with await self.session() as session:
            stmt = (
                select(JourneyInstanceStage)
                .where(JourneyInstanceStage.instance_id == uuid.UUID(str(instance_id)))
                .order_by(JourneyInstanceStage.order_index)
            )
            return list((await session.scalars(stmt)).all())

    async def set_settings(self, **settings: Any) -> None:
        """Change the tenant's settings (merged into the stored ones)."""
        async with await self.session() as session:
            tenant = await session.get(Tenant, self.tenant_id)
            assert tenant is not None
            tenant.settings = {**tenant.settings, **settings}
            await session.commit()

    async def stage_statuses(self, instance_id: uuid.UUID | str) -> list[str]:
        """Each stage's status, in order."""
        return [s.status for s in await self.stages(instance_id)]

    async def count_instances(self) -> int:
        """How many instances the tenant has."""
        async with await self.session() as session:
            return int(await session.scalar(select(func.count()).select_from(JourneyInstance)) or 0)


@pytest.fixture
async def clinic(tenant_id: uuid.UUID, system_sessionmaker: async_sessionmaker[AsyncSession]) -> Clinic:
    """This test's tenant with a patient reachable on every channel and a practitioner.

    Quiet hours are off: these tests are about journeys, whatever the hour the suite runs at (the send
    policy's own tests, journey messages included, turn them on)."""
    session = system_sessionmaker()
    bind_tenant(session, tenant_id)
    async with session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.settings = {**tenant.settings, "quiet_hours": {"enabled": False}}
        patient = Patient(
            mrn=f"MRN-{uuid.uuid4().hex[:8]}",
            first_name="Maria",
            last_name="Garcia",
            phone_primary="+14155550123",
            email_primary="maria@example.com",
            preferred_channel="whatsapp",
        )
        practitioner = Practitioner(first_name="John", last_name="Smith")
        session.add_all([patient, practitioner])
        await session.commit()
        return Clinic(tenant_id, patient.id, practitioner.id, system_sessionmaker)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
