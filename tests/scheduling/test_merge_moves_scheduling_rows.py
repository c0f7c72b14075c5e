"""Merging patients moves their waitlist entries and booking chats; a merged record cannot be booked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from core.database import bind_tenant
from domain.scheduling.models import BookingConversation
from tests.scheduling.conftest import API, future
from tests.scheduling.waitlist_support import WAITLIST, add_entry

MERGE = f"{API}/patients/merge"


async def test_merging_moves_the_duplicates_waitlist_entry_and_booking_chat_to_the_survivor(
    client: httpx.AsyncClient, auth: dict, tenant_id, system_sessionmaker, make_patient
) -> None:
    survivor, duplicate = await make_patient(), await make_patient()
    entry = await add_entry(client, auth, duplicate.id, speciality="Cardiology")
    await add_entry(client, auth, survivor.id, speciality="Cardiology")  # both wait: no clash on merge
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        session.add(
            BookingConversation(patient_id=duplicate.id, expires_at=datetime.now(UTC) + timedelta(hours=1))
        )
        await session.commit()

    resp = await client.post(
        MERGE,
        json={"primary_patient_id": str(survivor.id), "duplicate_patient_id": str(duplicate.id)},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text

    moved = (await client.get(f"{WAITLIST}/{entry['id']}", headers=auth)).json()
    assert moved["patient_id"] == str(survivor.id)
    assert (await client.get(WAITLIST, params={"patient_id": str(duplicate.id)}, headers=auth)).json()[
        "total"
    ] == 0
    assert (await client.get(WAITLIST, params={"patient_id": str(survivor.id)}, headers=auth)).json()[
        "total"
    ] == 2
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        owners = set(await session.scalars(select(BookingConversation.patient_id)))
    assert owners == {survivor.id}


async def test_a_merged_patient_cannot_be_booked_or_waitlisted(
    client: httpx.AsyncClient, auth: dict, make_patient, make_practitioner, book
) -> None:
    survivor, duplicate = await make_patient(), await make_patient()
    practitioner = await make_practitioner()
    merged = await client.post(
        MERGE,
        json={"primary_patient_id": str(survivor.id), "duplicate_patient_id": str(duplicate.id)},
        headers=auth,
    )
    assert merged.status_code == 200
    start = future(days=4)
    resp = await book(
        patient_id=str(duplicate.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 409
    assert resp.json()["merged_into_id"] == str(survivor.id)
    body = {
        "patient_id": str(duplicate.id),
        "speciality": "Cardiology",
        "start_date": "2030-01-01",
        "end_date": "2030-01-31",
    }
    assert (await client.post(WAITLIST, json=body, headers=auth)).status_code == 409
    resp = await book(
        patient_id=str(survivor.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 201
