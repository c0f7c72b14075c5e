"""Analytics fixtures: a clinic with a patient and a practitioner, and factories writing rows directly."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Executable, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment

ANALYTICS = "/api/v1/prm/analytics"


@dataclass
class Clinic:
    """A tenant with one patient and one practitioner; `add` writes any rows for it."""

    tenant_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    sessionmaker: async_sessionmaker[AsyncSession]

    async def add(self, *rows: Any) -> None:
        """Insert rows in this tenant."""
        async with self.sessionmaker() as session:
            bind_tenant(session, self.tenant_id)
            session.add_all(rows)
            await session.commit()

    async def appointment(self, start: datetime, status: str = "booked", **fields: Any) -> Appointment:
        """An appointment of the clinic's patient with its practitioner at `start` (30 minutes)."""
        row = Appointment(
            patient_id=self.patient_id,
            practitioner_id=self.practitioner_id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
            status=status,
            **fields,
        )
        await self.add(row)
        return row

    async def execute(self, statement: Executable) -> None:
        """Run one statement in this tenant and commit (bulk UPDATEs and DELETEs, as repositories issue)."""
        async with self.sessionmaker() as session:
            bind_tenant(session, self.tenant_id)
            await session.execute(statement)
            await session.commit()

    async def new_patient(self) -> uuid.UUID:
        """Another patient of the clinic."""
        patient = Patient(mrn=f"MRN-{uuid.uuid4().hex[:8]}", first_name="Bo", last_name="Silva")
        await self.add(patient)
        return patient.id

    async def rebuild(self) -> None:
        """Recompute the tenant's rollups from the base tables (`analytics_rebuild`)."""
        await self.execute(select(func.analytics_rebuild(self.tenant_id)))

    def message(self, direction: str, created_at: datetime, text: str = "", **fields: Any) -> Communication:
        """A message row (not yet added), of the clinic's patient unless `patient_id` says otherwise."""
        return Communication(
            patient_id=fields.pop("patient_id", self.patient_id),
            direction=direction,
            channel=fields.pop("channel", "sms"),
            status=fields.pop("status", "received" if direction == "inbound" else "sent"),
            message=text,
            created_at=created_at,
            **fields,
        )


async def make_clinic(tenant_id: uuid.UUID, sessionmaker: async_sessionmaker[AsyncSession]) -> Clinic:
    """A clinic in `tenant_id`."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        patient = Patient(
            mrn=f"MRN-{uuid.uuid4().hex[:8]}",
            first_name="Ana",
            last_name="Lima",
            phone_primary="+14155550123",
        )
        practitioner = Practitioner(first_name="John", last_name="Smith")
        session.add_all([patient, practitioner])
        await session.commit()
        return Clinic(tenant_id, patient.id, practitioner.id, sessionmaker)


@pytest.fixture
async def clinic(tenant_id: uuid.UUID, system_sessionmaker: async_sessionmaker[AsyncSession]) -> Clinic:
    """This test's clinic."""
    return await make_clinic(tenant_id, system_sessionmaker)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
