"""Ticket test fixtures: the time-skipping Temporal server with a worker running the SLA workflow and its
activities against the test database, the app pointed at it, and small factories."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps
from activities.tickets import TicketActivities
from core.database import bind_tenant, mark_system
from core.settings import Settings
from domain.patients.models import Patient
from domain.tenants.models import Tenant
from domain.tickets.models import Ticket, TicketEvent
from workflows.tickets import TicketSlaWorkflow

TICKETS = "/api/v1/prm/tickets"


@dataclass
class SlaWired:
    """The app wired to the time-skipping server, a worker polling a fresh task queue."""

    env: WorkflowEnvironment
    task_queue: str


@asynccontextmanager
async def _wired(app: Any, env: WorkflowEnvironment, deps: ActivityDeps) -> AsyncIterator[SlaWired]:
    task_queue = f"tickets-{uuid.uuid4().hex[:8]}"
    saved = (app.state.settings, app.state.temporal_client)
    app.state.settings = app.state.settings.model_copy(update={"temporal_task_queue": task_queue})
    app.state.temporal_client = env.client
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[TicketSlaWorkflow],
        activities=TicketActivities(deps).all(),
    )
    try:
        async with worker:
            yield SlaWired(env=env, task_queue=task_queue)
    finally:
        app.state.settings, app.state.temporal_client = saved


@pytest.fixture
async def sla_env(
    app: Any,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[SlaWired]:
    """The app on the time-skipping server with the ticket worker running."""
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    async with _wired(app, temporal_env, deps) as wired:
        yield wired


@dataclass
class Desk:
    """A tenant's support desk: one patient, and helpers to arrange and read tickets."""

    tenant_id: uuid.UUID
    patient_id: uuid.UUID
    sessionmaker: async_sessionmaker[AsyncSession]

    def session(self) -> AsyncSession:
        """A session bound to this tenant."""
        session = self.sessionmaker()
        bind_tenant(session, self.tenant_id)
        return session

    async def ticket(self, ticket_id: uuid.UUID | str) -> Ticket:
        """The ticket as committed now."""
        async with self.session() as session:
            row = await session.scalar(select(Ticket).where(Ticket.id == uuid.UUID(str(ticket_id))))
            assert row is not None
            return row

    async def events(self, ticket_id: uuid.UUID | str, kind: str | None = None) -> list[TicketEvent]:
        """The ticket's events (of one kind), oldest first."""
        async with self.session() as session:
            stmt = select(TicketEvent).where(TicketEvent.ticket_id == uuid.UUID(str(ticket_id)))
            if kind:
                stmt = stmt.where(TicketEvent.kind == kind)
            return list((await session.scalars(stmt.order_by(TicketEvent.created_at))).all())

    async def set_calendar(self, timezone: str = "UTC", **business_hours: Any) -> None:
        """Change the tenant's time zone and business hours (e.g. `weekdays=[0..6]` for every day)."""
        async with self.sessionmaker() as session:
            mark_system(session)
            tenant = await session.get(Tenant, self.tenant_id)
            assert tenant is not None
            settings = dict(tenant.settings or {})
            settings["business_hours"] = {**settings.get("business_hours", {}), **business_hours}
            tenant.settings = settings
            tenant.timezone = timezone
            await session.commit()


@pytest.fixture
async def desk(tenant_id: uuid.UUID, system_sessionmaker: async_sessionmaker[AsyncSession]) -> Desk:
    """This test's tenant with one patient."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        patient = Patient(mrn=f"MRN-{uuid.uuid4().hex[:8]}", first_name="Maria", last_name="Garcia")
        session.add(patient)
        await session.commit()
        return Desk(tenant_id, patient.id, system_sessionmaker)


@pytest.fixture
def new_ticket(client: Any, auth: dict[str, str], desk: Desk) -> Callable[..., Any]:
    """POST a ticket for the desk's patient; returns the response JSON (asserting 201)."""

    async def create(**fields: Any) -> dict[str, Any]:
        body = {"patient_id": str(desk.patient_id), "title": "Prescription refill request", **fields}
        resp = await client.post(TICKETS, json=body, headers=auth)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return create
