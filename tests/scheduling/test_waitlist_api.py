"""Waitlist API: entries (add, list, get, remove) and coordinators answering offers on a patient's behalf."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from core.database import bind_tenant
from domain.scheduling import backfill
from domain.scheduling.models import Appointment
from tests.scheduling.waitlist_support import (
    WAITLIST,
    add_entry,
    booked_then_cancelled,
    offers,
    set_policy,
    templates_sent,
)


async def offer_first_wave(sessionmaker, tenant_id, cancelled: dict) -> None:
    """What the backfill workflow's first activity does (no Temporal needed here)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await backfill.offer_wave(session, uuid.UUID(cancelled["id"]), 1, wave_size=3, hold_minutes=30)
        await session.commit()


async def test_add_list_get_and_remove_waitlist_entries(
    client: httpx.AsyncClient, auth: dict, make_patient, make_practitioner
) -> None:
    practitioner = await make_practitioner()
    first, second = await make_patient(), await make_patient()
    entry = await add_entry(
        client,
        auth,
        first.id,
        practitioner_id=practitioner["id"],
        part_of_day="morning",
        appointment_type="consult",
    )
    assert (entry["status"], entry["part_of_day"], entry["appointment_type"]) == (
        "waiting",
        "morning",
        "consult",
    )
    await add_entry(client, auth, second.id, speciality="Cardiology")

    listed = (await client.get(WAITLIST, params={"page_size": 1}, headers=auth)).json()
    assert (listed["total"], listed["has_next"], [e["id"] for e in listed["items"]]) == (
        2,
        True,
        [entry["id"]],
    )
    by_speciality = (await client.get(WAITLIST, params={"speciality": "cardiology"}, headers=auth)).json()
    assert [e["patient_id"] for e in by_speciality["items"]] == [str(second.id)]
    assert (await client.get(f"{WAITLIST}/{entry['id']}", headers=auth)).json() == entry

    assert (await client.delete(f"{WAITLIST}/{entry['id']}", headers=auth)).status_code == 204
    removed = (await client.get(WAITLIST, params={"status": "removed"}, headers=auth)).json()
    assert [e["id"] for e in removed["items"]] == [entry["id"]]
    assert (await client.delete(f"{WAITLIST}/{entry['id']}", headers=auth)).status_code == 204


async def test_waitlist_validation_is_422(client: httpx.AsyncClient, auth: dict, make_patient) -> None:
    patient = await make_patient()
    base = {"patient_id": str(patient.id), "start_date": "2030-01-10", "end_date": "2030-01-20"}
    for body in (
        base,  # neither practitioner nor speciality
        {**base, "speciality": "Cardiology", "end_date": "2030-01-01"},
        {**base, "speciality": "Cardiology", "part_of_day": "midnight"},
        {"speciality": "Cardiology", "start_date": "2030-01-10", "end_date": "2030-01-20"},
    ):
        assert (await client.post(WAITLIST, json=body, headers=auth)).status_code == 422, body
    assert (await client.get(WAITLIST, params={"status": "lost"}, headers=auth)).status_code == 422
    assert (await client.get(WAITLIST, params={"page_size": 101}, headers=auth)).status_code == 422


async def test_unknown_and_other_tenants_records_are_404(
    client: httpx.AsyncClient, auth: dict, make_tenant, make_patient, headers_for, make_practitioner
) -> None:
    other = await make_tenant()
    theirs = await make_patient(tenant=other)
    mine = await make_patient()
    body = {"start_date": "2030-01-10", "end_date": "2030-01-20", "speciality": "Cardiology"}
    for patient_id in (uuid.uuid4(), theirs.id):
        resp = await client.post(WAITLIST, json={**body, "patient_id": str(patient_id)}, headers=auth)
        assert resp.status_code == 404
    resp = await client.post(
        WAITLIST,
        json={**body, "patient_id": str(mine.id), "practitioner_id": str(uuid.uuid4())},
        headers=auth,
    )
    assert resp.status_code == 404
    entry = await add_entry(client, auth, mine.id, speciality="Cardiology")
    foreign = headers_for(other)
    assert (await client.get(f"{WAITLIST}/{entry['id']}", headers=foreign)).status_code == 404
    assert (await client.delete(f"{WAITLIST}/{entry['id']}", headers=foreign)).status_code == 404
    assert (await client.get(WAITLIST, headers=foreign)).json()["total"] == 0
    for action in ("accept", "decline"):
        resp = await client.post(f"{WAITLIST}/offers/{uuid.uuid4()}/{action}", headers=auth)
        assert resp.status_code == 404


async def test_accepting_for_a_patient_books_the_time_and_the_rest_of_the_wave_gets_409(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    system_sessionmaker,
    make_tenant,
    headers_for,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    await set_policy(system_sessionmaker, tenant_id, wave_size=3, hold_minutes=30)
    practitioner = await make_practitioner()
    first, second = await make_patient(), await make_patient()
    await add_entry(client, auth, first.id, practitioner_id=practitioner["id"])
    second_entry = await add_entry(client, auth, second.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await offer_first_wave(system_sessionmaker, tenant_id, cancelled)
    by_patient = {o.patient_id: o for o in await offers(system_sessionmaker, tenant_id)}
    listed = (await client.get(f"{WAITLIST}/offers", params={"status": "offered"}, headers=auth)).json()
    assert listed["total"] == 2

    other = await make_tenant()
    foreign = await client.post(
        f"{WAITLIST}/offers/{by_patient[first.id].id}/accept", headers=headers_for(other)
    )
    assert foreign.status_code == 404

    accepted = await client.post(f"{WAITLIST}/offers/{by_patient[first.id].id}/accept", headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        booked = await session.scalar(
            select(Appointment).where(Appointment.id == uuid.UUID(accepted.json()["appointment_id"]))
        )
        assert (booked.patient_id, str(booked.time_slot_id)) == (first.id, cancelled["time_slot_id"])
    again = await client.post(f"{WAITLIST}/offers/{by_patient[first.id].id}/accept", headers=auth)
    assert (again.status_code, again.json()["status"]) == (200, "accepted")  # idempotent

    late = await client.post(f"{WAITLIST}/offers/{by_patient[second.id].id}/accept", headers=auth)
    assert late.status_code == 409
    assert late.json()["offer_id"] == str(by_patient[second.id].id)
    entry = (await client.get(f"{WAITLIST}/{second_entry['id']}", headers=auth)).json()
    assert entry["status"] == "waiting"
    declined_late = await client.post(f"{WAITLIST}/offers/{by_patient[second.id].id}/decline", headers=auth)
    assert declined_late.status_code == 409


async def test_declining_keeps_the_patient_waiting_and_a_declined_offer_cannot_be_accepted(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner()
    patient = await make_patient()
    entry = await add_entry(client, auth, patient.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await offer_first_wave(system_sessionmaker, tenant_id, cancelled)
    [offer] = await offers(system_sessionmaker, tenant_id)
    assert (await client.get(f"{WAITLIST}/{entry['id']}", headers=auth)).json()["status"] == "offered"

    declined = await client.post(f"{WAITLIST}/offers/{offer.id}/decline", headers=auth)
    assert (declined.status_code, declined.json()["status"]) == (200, "declined")
    assert (await client.get(f"{WAITLIST}/{entry['id']}", headers=auth)).json()["status"] == "waiting"
    assert (await client.post(f"{WAITLIST}/offers/{offer.id}/accept", headers=auth)).status_code == 409


async def test_a_booked_entry_cannot_be_removed(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner()
    patient = await make_patient()
    entry = await add_entry(client, auth, patient.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await offer_first_wave(system_sessionmaker, tenant_id, cancelled)
    [offer] = await offers(system_sessionmaker, tenant_id)
    assert (await client.post(f"{WAITLIST}/offers/{offer.id}/accept", headers=auth)).status_code == 200
    assert (await client.delete(f"{WAITLIST}/{entry['id']}", headers=auth)).status_code == 409


async def test_the_offer_message_idempotency_holds_when_a_wave_is_offered_again(
    tenant_id,
    client: httpx.AsyncClient,
    auth: dict,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner()
    patient = await make_patient()
    await add_entry(client, auth, patient.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await offer_first_wave(system_sessionmaker, tenant_id, cancelled)
    await offer_first_wave(system_sessionmaker, tenant_id, cancelled)  # the activity retried
    assert len(await offers(system_sessionmaker, tenant_id)) == 1
    assert (await templates_sent(system_sessionmaker, tenant_id, patient.id)).count("waitlist_offer") == 1


def test_waitlist_settings_are_part_of_the_validated_tenant_settings() -> None:
    import pytest
    from pydantic import ValidationError

    from domain.tenants.schemas import TenantSettings

    defaults = TenantSettings().waitlist
    assert (defaults.wave_size, defaults.hold_minutes) == (3, 30)
    custom = TenantSettings.model_validate({"waitlist": {"wave_size": 5, "hold_minutes": 15}}).waitlist
    assert (custom.wave_size, custom.hold_minutes) == (5, 15)
    for bad in ({"wave_size": 0}, {"hold_minutes": 0}, {"wave_size": "many"}):
        with pytest.raises(ValidationError):
            TenantSettings.model_validate({"waitlist": bad})
