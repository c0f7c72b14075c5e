"""Patient factories: patients through the API, and the records a patient owns straight through the ORM.

Appointments, messages, tickets and journey instances are written in a session bound to the test's tenant
(their APIs are built elsewhere), exactly as the tenant-scoped database layer stamps them. The fixtures that
hand these out are in `tests/patients/conftest.py` (and `tests/audit/conftest.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.journeys.models import Journey, JourneyInstance
from domain.patients.models import ChannelConsent
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from domain.tickets.models import Ticket

BASE = "/api/v1/prm/patients"


def patient_body(**overrides: Any) -> dict[str, Any]:
    """A valid `PatientCreate` body; the MRN is left to the server unless overridden."""
    body: dict[str, Any] = {
        "first_name": "John",
        "last_name": "Smith",
        "date_of_birth": "1980-04-12",
        "gender": "male",
        "phone_primary": "+1 (415) 555-2671",
        "email_primary": "John.Smith@Example.com",
        "city": "San Francisco",
        "preferred_language": "en",
        "preferred_channel": "sms",
    }
    body.update(overrides)
    return body


CreatePatient = Callable[..., Awaitable[dict[str, Any]]]


def patient_factory(client: httpx.AsyncClient, auth: dict[str, str]) -> CreatePatient:
    """Register a patient through the API (as `auth`) and return the response."""

    async def factory(**overrides: Any) -> dict[str, Any]:
        resp = await client.post(BASE, json=patient_body(**overrides), headers=auth)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return factory


def ago(**delta: float) -> datetime:
    """A moment in the past."""
    return datetime.now(UTC) - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    """A moment in the future."""
    return datetime.now(UTC) + timedelta(**delta)


@dataclass
class Records:
    """Writes rows a patient owns into the test tenant, one short transaction each."""

    sessionmaker: async_sessionmaker[AsyncSession]
    tenant_id: uuid.UUID

    async def _add(self, *rows: Any) -> Any:
        async with self.sessionmaker() as session:
            bind_tenant(session, self.tenant_id)
            session.add_all(rows)
            await session.commit()
        return rows[0]

    async def practitioner(self) -> Practitioner:
        """A practitioner to book appointments with."""
        return await self._add(Practitioner(first_name="Ada", last_name="Lovelace"))

    async def appointment(
        self, patient_id: str | uuid.UUID, start: datetime, status: str = "booked", **fields: Any
    ) -> Appointment:
        """A 30-minute appointment with a fresh practitioner (so bookings never overlap)."""
        practitioner = await self.practitioner()
        return await self._add(
            Appointment(
                patient_id=uuid.UUID(str(patient_id)),
                practitioner_id=practitioner.id,
                start_time=start,
                end_time=start + timedelta(minutes=30),
                status=status,
                **fields,
            )
        )

    async def communication(
        self, patient_id: str | uuid.UUID, channel: str = "sms", direction: str = "outbound", **fields: Any
    ) -> Communication:
        """A message to or from the patient."""
        fields.setdefault("message", "Your appointment is confirmed.")
        return await self._add(
            Communication(
                patient_id=uuid.UUID(str(patient_id)), channel=channel, direction=direction, **fields
            )
        )

    async def ticket(self, patient_id: str | uuid.UUID, status: str = "open", **fields: Any) -> Ticket:
        """A follow-up ticket about the patient."""
        fields.setdefault("title", "Call back about results")
        return await self._add(Ticket(patient_id=uuid.UUID(str(patient_id)), status=status, **fields))

    async def journey_instance(
        self, patient_id: str | uuid.UUID, status: str = "active", journey_name: str = "Post-surgery recovery"
    ) -> JourneyInstance:
        """The patient placed on a new journey."""
        journey = await self._add(Journey(name=journey_name))
        return await self._add(
            JourneyInstance(journey_id=journey.id, patient_id=uuid.UUID(str(patient_id)), status=status)
        )

    async def consent(self, patient_id: str | uuid.UUID, channel: str, opted_out: bool) -> ChannelConsent:
        """The patient's opt-out (or opt-in) for one channel."""
        return await self._add(
            ChannelConsent(
                patient_id=uuid.UUID(str(patient_id)),
                channel=channel,
                opted_out=opted_out,
                changed_at=datetime.now(UTC),
            )
        )
