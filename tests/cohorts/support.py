"""Cohort test helpers: a clinic population written straight through the ORM (in the test's tenant), the
cohorts API, and counts written as plain SQL over the tables, independently of `domain.cohorts.criteria`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.journeys.models import Journey, JourneyInstance
from domain.patients.models import ChannelConsent, Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment, Location

BASE = "/api/v1/prm/cohorts"


def days_ago(days: float) -> datetime:
    """A moment `days` ago."""
    return datetime.now(UTC) - timedelta(days=days)


def days_ahead(days: float) -> datetime:
    """A moment `days` from now."""
    return datetime.now(UTC) + timedelta(days=days)


def born_years_ago(years: int, days: int = 0) -> date:
    """A birth date `years` whole years before today (UTC), shifted by `days` (positive: later)."""
    today = datetime.now(UTC).date()
    try:
        birthday = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        birthday = today.replace(year=today.year - years, day=28)
    return birthday + timedelta(days=days)


@dataclass
class Clinic:
    """Writes a tenant's patients and what they own, one short transaction each."""

    sessionmaker: async_sessionmaker[AsyncSession]
    tenant_id: uuid.UUID

    async def _add(self, row: Any) -> Any:
        async with self.sessionmaker() as session:
            bind_tenant(session, self.tenant_id)
            session.add(row)
            await session.commit()
        return row

    async def patient(self, first_name: str = "Pat", last_name: str = "Doe", **fields: Any) -> uuid.UUID:
        """A patient; returns the id."""
        row = await self._add(
            Patient(mrn=f"MRN-{uuid.uuid4().hex[:10]}", first_name=first_name, last_name=last_name, **fields)
        )
        return row.id

    async def practitioner(self, speciality: str | None = None) -> uuid.UUID:
        """A practitioner; returns the id."""
        return (
            await self._add(Practitioner(first_name="Ada", last_name="Lovelace", speciality=speciality))
        ).id

    async def location(self, name: str = "Downtown") -> uuid.UUID:
        """A location; returns the id."""
        return (await self._add(Location(name=name))).id

    async def journey(self, name: str = "Recall") -> uuid.UUID:
        """A journey definition; returns the id."""
        return (await self._add(Journey(name=name))).id

    async def appointment(
        self,
        patient_id: uuid.UUID,
        start: datetime,
        status: str = "completed",
        practitioner_id: uuid.UUID | None = None,
        location_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """A 30-minute appointment, with a fresh practitioner unless one is named (a practitioner's active
        appointments must not overlap: give them different starts)."""
        if practitioner_id is None:
            practitioner_id = await self.practitioner()
        row = Appointment(
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            location_id=location_id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
            status=status,
        )
        return (await self._add(row)).id

    async def on_journey(self, patient_id: uuid.UUID, journey_id: uuid.UUID, status: str = "active") -> None:
        """The patient placed on a journey (an instance in `status`)."""
        await self._add(JourneyInstance(journey_id=journey_id, patient_id=patient_id, status=status))

    async def consent(self, patient_id: uuid.UUID, channel: str, opted_out: bool) -> None:
        """The patient's opt-out (or opt-back-in) for one channel."""
        await self._add(
            ChannelConsent(
                patient_id=patient_id, channel=channel, opted_out=opted_out, changed_at=datetime.now(UTC)
            )
        )

    async def merge(self, merged_id: uuid.UUID, into: uuid.UUID) -> None:
        """Mark `merged_id` as merged into `into` (as the merge leaves a duplicate)."""
        async with self.sessionmaker() as session:
            bind_tenant(session, self.tenant_id)
            patient = await session.get(Patient, merged_id)
            assert patient is not None
            patient.merged_into_id = into
            patient.status = "inactive"
            await session.commit()

    async def sql_ids(self, where: str, **params: Any) -> set[uuid.UUID]:
        """Ids of the tenant's unmerged patients `p` (tenant `t`) meeting `where`, a plain-SQL condition."""
        # `where` is the test's own SQL text; values travel as bind parameters.
        sql = "SELECT p.id FROM patients p JOIN tenants t ON t.id = p.tenant_id "
        sql += f"WHERE p.tenant_id = :tenant AND p.merged_into_id IS NULL AND ({where})"
        async with self.sessionmaker() as session:
            rows = await session.execute(text(sql), {"tenant": self.tenant_id, **params})
            return {row[0] for row in rows}


async def create_cohort(
    client: httpx.AsyncClient, headers: dict[str, str], criteria: dict[str, Any], name: str | None = None
) -> dict[str, Any]:
    """Save a cohort through the API; returns the answer."""
    body = {"name": name or f"Cohort {uuid.uuid4().hex[:8]}", "criteria": criteria}
    resp = await client.post(BASE, json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def preview(
    client: httpx.AsyncClient, headers: dict[str, str], criteria: dict[str, Any]
) -> tuple[int, list[uuid.UUID]]:
    """Save a cohort with `criteria` and preview it: (count, the sample's ids)."""
    cohort = await create_cohort(client, headers, criteria)
    resp = await client.get(f"{BASE}/{cohort['id']}/preview", headers=headers)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    return answer["count"], [uuid.UUID(member["id"]) for member in answer["sample"]]


async def assert_preview_matches(
    client: httpx.AsyncClient, headers: dict[str, str], criteria: dict[str, Any], expected: set[uuid.UUID]
) -> None:
    """The preview holds exactly `expected` (count and sample: the populations here are under 20)."""
    count, sample = await preview(client, headers, criteria)
    assert count == len(expected)
    assert set(sample) == expected
    assert len(sample) == len(set(sample))
