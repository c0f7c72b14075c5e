"""No double-booking, ever: concurrent requests race, the database lets exactly one through."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx

from tests.scheduling.conftest import API, future

CONCURRENT = 50


async def test_fifty_concurrent_bookings_of_one_slot_give_one_201_and_49_409(
    client: httpx.AsyncClient, auth: dict, app, make_practitioner, make_patient, make_slot, book
) -> None:
    practitioner = await make_practitioner()
    slot = await make_slot(practitioner["id"], future())
    patients = [await make_patient() for _ in range(CONCURRENT)]
    engine = app.state.engine
    # The audit buffer appends reads' records every second on a connection of its own: count without it
    # (its flush, awaited here, waits for one in progress; nothing runs between it and the count).
    await app.state.audit_buffer.flush()
    before = engine.pool.checkedout()

    responses = await asyncio.gather(*(book(patient_id=str(p.id), time_slot_id=slot["id"]) for p in patients))

    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: CONCURRENT - 1}, codes
    winner = next(r.json() for r in responses if r.status_code == 201)
    for loser in (r for r in responses if r.status_code == 409):
        body = loser.json()
        assert body["detail"] == "The time slot is fully booked."
        assert [c["appointment_id"] for c in body["conflicting_appointments"]] == [winner["id"]]
    slot_now = (await client.get(f"{API}/time-slots/{slot['id']}", headers=auth)).json()
    assert slot_now["booked_count"] == 1
    listed = await client.get(
        f"{API}/appointments", params={"practitioner_id": practitioner["id"]}, headers=auth
    )
    assert listed.json()["total"] == 1
    await app.state.audit_buffer.flush()
    assert engine.pool.checkedout() == before


async def test_fifty_concurrent_overlapping_direct_bookings_give_exactly_one(
    client: httpx.AsyncClient, auth: dict, make_practitioner, make_patient, book
) -> None:
    practitioner = await make_practitioner()
    patients = [await make_patient() for _ in range(CONCURRENT)]
    start = future()
    # Every request overlaps every other one (all contain start + 30 min), with different bounds.
    responses = await asyncio.gather(
        *(
            book(
                patient_id=str(p.id),
                practitioner_id=practitioner["id"],
                start_time=start + timedelta(minutes=i % 30),
                end_time=start + timedelta(minutes=31 + i % 29),
            )
            for i, p in enumerate(patients)
        )
    )
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: CONCURRENT - 1}, codes
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert all(
        [c["appointment_id"] for c in r.json()["conflicting_appointments"]] == [winner["id"]]
        for r in responses
        if r.status_code == 409
    )
    listed = await client.get(
        f"{API}/appointments", params={"practitioner_id": practitioner["id"]}, headers=auth
    )
    assert listed.json()["total"] == 1
