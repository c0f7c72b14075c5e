"""Waitlist backfill (time-skipping server): a cancelled time is offered wave by wave, booked by reply."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from tests.scheduling.conftest import API
from tests.scheduling.waitlist_support import (
    add_entry,
    backfill,
    booked_then_cancelled,
    entry_status,
    offers,
    open_offers,
    reply,
    set_policy,
    templates_sent,
)

RESULT_TIMEOUT = 15


async def test_a_waitlisted_patient_is_offered_a_cancelled_slot_and_books_it_by_replying(
    client: httpx.AsyncClient,
    auth: dict,
    app,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner()
    waiting = await make_patient(phone_primary="+14155550301")
    entry = await add_entry(client, auth, waiting.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])

    [offer] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert (offer.patient_id, offer.wave) == (waiting.id, 1)
    assert "waitlist_offer" in await templates_sent(system_sessionmaker, tenant_id, waiting.id)

    assert await reply(app, system_sessionmaker, tenant_id, (waiting.id, "Yes please!")) == [offer.id]
    assert await asyncio.wait_for(backfill(temporal_env, cancelled).result(), RESULT_TIMEOUT) == "booked"

    listed = (
        await client.get(f"{API}/appointments", params={"patient_id": str(waiting.id)}, headers=auth)
    ).json()
    [appointment] = listed["items"]
    assert (appointment["time_slot_id"], appointment["status"], appointment["source_channel"]) == (
        cancelled["time_slot_id"],
        "booked",
        "waitlist",
    )
    assert await entry_status(system_sessionmaker, tenant_id, entry["id"]) == "booked"
    assert (await templates_sent(system_sessionmaker, tenant_id, waiting.id))[-1] == "appointment_booked"
    # The new appointment got its reminder workflow.
    started = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    assert (await started.describe()).status is not None


async def test_two_patients_of_one_wave_both_accept_one_gets_it_the_other_is_told_it_is_taken(
    client: httpx.AsyncClient,
    auth: dict,
    app,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    await set_policy(system_sessionmaker, tenant_id, wave_size=2, hold_minutes=30)
    practitioner = await make_practitioner(speciality="Dermatology")
    first = await make_patient(phone_primary="+14155550311")
    second = await make_patient(phone_primary="+14155550312")
    await add_entry(client, auth, first.id, speciality="dermatology")
    second_entry = await add_entry(client, auth, second.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await open_offers(system_sessionmaker, tenant_id, cancelled, 2)

    await reply(app, system_sessionmaker, tenant_id, (first.id, "yes"), (second.id, "YES"))
    assert await asyncio.wait_for(backfill(temporal_env, cancelled).result(), RESULT_TIMEOUT) == "booked"

    by_patient = {o.patient_id: o for o in await offers(system_sessionmaker, tenant_id)}
    assert (by_patient[first.id].status, by_patient[second.id].status) == ("accepted", "taken")
    slot_bookings = (
        await client.get(f"{API}/appointments", params={"status": "booked"}, headers=auth)
    ).json()["items"]
    assert [a["patient_id"] for a in slot_bookings] == [str(first.id)]
    assert "waitlist_taken" in await templates_sent(system_sessionmaker, tenant_id, second.id)
    assert "appointment_booked" not in await templates_sent(system_sessionmaker, tenant_id, second.id)
    assert await entry_status(system_sessionmaker, tenant_id, second_entry["id"]) == "waiting"


async def test_when_nobody_accepts_the_next_wave_is_offered_after_the_hold_then_the_list_runs_out(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    await set_policy(system_sessionmaker, tenant_id, wave_size=1, hold_minutes=20)
    practitioner = await make_practitioner()
    oldest = await make_patient(phone_primary="+14155550321")
    next_in_line = await make_patient(phone_primary="+14155550322")
    oldest_entry = await add_entry(client, auth, oldest.id, practitioner_id=practitioner["id"])
    await add_entry(client, auth, next_in_line.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])

    [first_wave] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert first_wave.patient_id == oldest.id
    await temporal_env.sleep(timedelta(minutes=21))  # past the first wave's hold
    [second_wave] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert (second_wave.patient_id, second_wave.wave) == (next_in_line.id, 2)
    [expired] = await offers(system_sessionmaker, tenant_id, patient_id=oldest.id)
    assert expired.status == "expired"
    assert await entry_status(system_sessionmaker, tenant_id, oldest_entry["id"]) == "waiting"

    await temporal_env.sleep(timedelta(minutes=21))  # the second wave's hold: nobody is left after it
    assert await asyncio.wait_for(backfill(temporal_env, cancelled).result(), RESULT_TIMEOUT) == "exhausted"
    assert [o.status for o in await offers(system_sessionmaker, tenant_id)] == ["expired", "expired"]


async def test_a_removed_waitlist_entry_is_not_offered(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner()
    removed = await make_patient(phone_primary="+14155550331")
    kept = await make_patient(phone_primary="+14155550332")
    removed_entry = await add_entry(client, auth, removed.id, practitioner_id=practitioner["id"])
    await add_entry(client, auth, kept.id, practitioner_id=practitioner["id"])
    assert (await client.delete(f"{API}/waitlist/{removed_entry['id']}", headers=auth)).status_code == 204

    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    [offer] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert offer.patient_id == kept.id
    assert await offers(system_sessionmaker, tenant_id, patient_id=removed.id) == []
    assert "waitlist_offer" not in await templates_sent(system_sessionmaker, tenant_id, removed.id)
