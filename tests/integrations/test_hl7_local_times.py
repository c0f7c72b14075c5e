"""HL7 times without an offset are the sender's local time (HL7 v2 TS): read in the zone of the client's
feed (the tenant's by default, or the client's own), daylight saving time included, as Epic and Cerner send
them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from core.events import DomainEvent
from domain.hl7.feed import Feed
from domain.hl7.messages import parse
from domain.scheduling.models import Appointment
from tests.integrations.ehr_messages import ack_code, adt, msh, pv1, siu
from tests.integrations.hl7_messages import send
from tests.tenants import TenantFactory

CLIENTS = "/api/v1/prm/integration-clients"


@pytest.fixture
async def tenant_id(make_tenant: TenantFactory) -> uuid.UUID:
    """A New York clinic."""
    return await make_tenant("Upper West Side Clinic", "America/New_York")


async def appointment_start(session_of: Any) -> datetime:
    """When the tenant's one appointment starts, in UTC."""
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
        return appointment.start_time.astimezone(UTC)


async def test_an_siu_for_10_am_in_new_york_books_15_utc_in_january_and_14_utc_in_july(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    winter = await send(client, hl7_auth, siu("S12", "E1001", "50001", "202701151000"))
    summer = await send(client, hl7_auth, siu("S12", "E1002", "50002", "202707151000"))

    assert ack_code(winter) == ack_code(summer) == "AA", winter.text + summer.text
    async with session_of() as session:
        rows = (await session.scalars(select(Appointment).order_by(Appointment.start_time))).all()
    assert [a.start_time.astimezone(UTC) for a in rows] == [
        datetime(2027, 1, 15, 15, 0, tzinfo=UTC),  # EST, UTC-5
        datetime(2027, 7, 15, 14, 0, tzinfo=UTC),  # EDT, UTC-4
    ]
    assert all((a.end_time - a.start_time).total_seconds() == 1800 for a in rows)


async def test_the_days_either_side_of_the_spring_change_read_in_their_own_offsets() -> None:
    new_york = Feed(zone=ZoneInfo("America/New_York"))
    # Daylight saving time starts in New York on 14 March 2027 at 02:00.
    before = parse(siu("S12", "E1", "1", "202703131000"), new_york)
    after = parse(siu("S12", "E1", "1", "202703151000"), new_york)

    def start(parsed: Any) -> datetime:
        at = parsed.timestamp(parsed.required("SCH").value(11, 4), "SCH-11")
        assert at is not None
        return at.astimezone(UTC)

    assert start(before) == datetime(2027, 3, 13, 15, 0, tzinfo=UTC)
    assert start(after) == datetime(2027, 3, 15, 14, 0, tzinfo=UTC)
    # A time that names its offset keeps it, whatever the feed's zone.
    explicit = parse(siu("S12", "E1", "1", "202703151000+0000"), new_york)
    assert start(explicit) == datetime(2027, 3, 15, 10, 0, tzinfo=UTC)


def test_msh7_without_an_offset_is_read_in_the_feeds_zone() -> None:
    text = msh("ADT^A04", "1", sent="20260701093000") + "\rPID|1||X^^^H^MR||Doe^John\r"

    parsed = parse(text, Feed(zone=ZoneInfo("America/Chicago")))

    assert parsed.header.sent_at == datetime(2026, 7, 1, 14, 30, tzinfo=UTC)


async def test_the_clients_own_zone_wins_over_the_tenants(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    headers_for: Any,
    tenant_id: uuid.UUID,
    session_of: Any,
) -> None:
    admin = headers_for(tenant_id, "admin")
    [hl7_client] = (await client.get(CLIENTS, headers=admin)).json()
    assert hl7_client["hl7_feed"]["timezone"] is None  # the tenant's
    configured = await client.patch(
        f"{CLIENTS}/{hl7_client['client_id']}", json={"timezone": "America/Los_Angeles"}, headers=admin
    )
    assert configured.status_code == 200, configured.text
    assert configured.json()["hl7_feed"]["timezone"] == "America/Los_Angeles"

    booked = await send(client, hl7_auth, siu("S12", "E2001", "60001", "202701151000"))

    assert ack_code(booked) == "AA", booked.text
    assert await appointment_start(session_of) == datetime(2027, 1, 15, 18, 0, tzinfo=UTC)


async def test_a_discharge_time_without_an_offset_dates_the_event_in_the_clinics_zone(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    discharged = await send(
        client, hl7_auth, adt("A03", "E3001", pv1("V-3001", discharged="20261201100000"), language="ENG")
    )

    assert ack_code(discharged) == "AA", discharged.text
    async with session_of() as session:
        [event] = (
            await session.scalars(select(DomainEvent).where(DomainEvent.type == "encounter.discharged"))
        ).all()
    assert event.occurred_at.astimezone(UTC) == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


async def test_an_unknown_zone_is_refused_with_422(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    [hl7_client] = (await client.get(CLIENTS, headers=admin)).json()

    refused = await client.patch(
        f"{CLIENTS}/{hl7_client['client_id']}", json={"timezone": "Eastern Standard Time"}, headers=admin
    )

    assert refused.status_code == 422
    assert "timezone" in str(refused.json()["detail"])
