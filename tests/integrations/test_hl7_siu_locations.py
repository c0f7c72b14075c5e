"""SIU messages and their location (AIL-3): a location we know is used; one we do not know is registered from
the message (as an unknown AIP-3 practitioner is), in the clinic's time zone, once however many messages name
it. Sent as an EHR would, against the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import API_PREFIX
from domain.scheduling.models import Appointment, Location
from tests.integrations.hl7_messages import segments, send, siu
from tests.tenants import TenantFactory

SessionOf = Callable[[], AsyncSession]
CLINIC_TIMEZONE = "Europe/Paris"


@pytest.fixture
async def tenant_id(make_tenant: TenantFactory) -> uuid.UUID:
    """A clinic in Paris (its locations' local day is Paris's)."""
    return await make_tenant(timezone=CLINIC_TIMEZONE)


def next_week(hours: int = 0) -> datetime:
    """A time next week."""
    return (datetime.now(UTC) + timedelta(days=7, hours=hours)).replace(microsecond=0)


async def appointments_and_locations(session_of: SessionOf) -> tuple[list[Appointment], list[Location]]:
    """The tenant's appointments and locations."""
    async with session_of() as session:
        appointments = (await session.scalars(select(Appointment).order_by(Appointment.start_time))).all()
        locations = (await session.scalars(select(Location))).all()
    return list(appointments), list(locations)


async def test_an_unknown_ail_location_is_registered_once_in_the_clinics_time_zone(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    first = await send(
        client, hl7_auth, siu("S12", "MRN8001", "APPT-8001", next_week(), location="ORTHO ROOM 2")
    )
    again = await send(
        client, hl7_auth, siu("S12", "MRN8002", "APPT-8002", next_week(2), location="Ortho Room 2")
    )

    assert segments(first.text)["MSA"][1] == segments(again.text)["MSA"][1] == "AA"
    appointments, [location] = await appointments_and_locations(session_of)
    assert (location.name, location.timezone) == ("ORTHO ROOM 2", CLINIC_TIMEZONE)
    assert [a.location_id for a in appointments] == [location.id, location.id]


async def test_a_known_location_is_used_by_its_name_or_facility(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], auth: dict[str, str], session_of: SessionOf
) -> None:
    created = await client.post(
        f"{API_PREFIX}/locations",
        json={"name": "Springfield Clinic", "timezone": CLINIC_TIMEZONE},
        headers=auth,
    )
    assert created.status_code == 201, created.text

    # The point of care (PL-1) is unknown, its facility (PL-4) is the clinic we have.
    response = await send(
        client, hl7_auth, siu("S12", "MRN8101", "APPT-8101", next_week(), location="^^^Springfield Clinic")
    )

    assert segments(response.text)["MSA"][1] == "AA"
    [appointment], [location] = await appointments_and_locations(session_of)
    assert appointment.location_id == location.id == uuid.UUID(created.json()["id"])


async def test_two_messages_naming_one_new_location_at_once_register_it_once(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    bodies = [
        siu("S12", f"MRN820{i}", f"APPT-820{i}", next_week(i), location="Cardio Suite") for i in range(2)
    ]

    acks = await asyncio.gather(*(send(client, hl7_auth, body) for body in bodies))

    assert [segments(a.text)["MSA"][1] for a in acks] == ["AA", "AA"]
    appointments, [location] = await appointments_and_locations(session_of)
    assert {a.location_id for a in appointments} == {location.id}


async def test_an_s12_without_ail_books_without_a_location(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    response = await send(client, hl7_auth, siu("S12", "MRN8301", "APPT-8301", next_week()))

    assert segments(response.text)["MSA"][1] == "AA"
    [appointment], locations = await appointments_and_locations(session_of)
    assert appointment.location_id is None and locations == []
