"""What the clinic sees of one patient: statistics, the 360 view, appointments and conversations."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from tests.patients.support import BASE, CreatePatient, Records, ago, ahead

REFERENCE_360_KEYS = {
    "patient",
    "appointments",
    "journeys",
    "tickets",
    "communications",
    "total_appointments",
    "upcoming_appointments",
    "active_journeys",
    "open_tickets",
    "recent_communications",
    "last_visit_date",
    "next_appointment_date",
}


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def test_360_of_a_new_patient_has_the_reference_keys_and_nothing_else(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    resp = await client.get(f"{BASE}/{patient['id']}/360", headers=auth)
    assert resp.status_code == 200
    view = resp.json()
    assert set(view) == REFERENCE_360_KEYS
    assert view["patient"]["id"] == patient["id"]
    assert [view[k] for k in ("appointments", "journeys", "tickets", "communications")] == [[], [], [], []]
    assert [view[k] for k in ("total_appointments", "upcoming_appointments", "active_journeys")] == [0, 0, 0]
    assert [view[k] for k in ("open_tickets", "recent_communications")] == [0, 0]
    assert (view["last_visit_date"], view["next_appointment_date"]) == (None, None)


async def test_360_shows_recent_and_open_records_with_counts(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    pid = patient["id"]
    visit = await records.appointment(pid, ago(days=20), status="completed")
    await records.appointment(pid, ago(days=3), status="no_show")
    soon = await records.appointment(pid, ahead(days=2), status="confirmed")
    await records.appointment(pid, ahead(days=9))
    await records.appointment(pid, ahead(days=5), status="cancelled")
    journey = await records.journey_instance(pid, journey_name="Knee recovery")
    await records.journey_instance(pid, status="completed")
    ticket = await records.ticket(pid)
    await records.ticket(pid, status="closed")
    for _ in range(2):
        await records.communication(pid)
    await records.communication(pid, direction="inbound", status="received", message="STOP")

    view = (await client.get(f"{BASE}/{pid}/360", headers=auth)).json()

    assert (view["total_appointments"], view["upcoming_appointments"]) == (5, 2)
    assert when(view["last_visit_date"]) == visit.start_time
    assert when(view["next_appointment_date"]) == soon.start_time
    assert len(view["appointments"]) == 5
    assert [j["id"] for j in view["journeys"]] == [str(journey.id)]
    assert view["journeys"][0]["journey_name"] == "Knee recovery"
    assert (view["active_journeys"], view["open_tickets"]) == (1, 1)
    assert [t["id"] for t in view["tickets"]] == [str(ticket.id)]
    assert view["recent_communications"] == 3
    assert view["communications"][0]["message"] == "STOP"


async def test_360_lists_only_the_latest_10_appointments_but_counts_all(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    for day in range(12):
        await records.appointment(patient["id"], ago(days=day + 1), status="completed")
    view = (await client.get(f"{BASE}/{patient['id']}/360", headers=auth)).json()
    assert (len(view["appointments"]), view["total_appointments"]) == (10, 12)
    starts = [a["start_time"] for a in view["appointments"]]
    assert starts == sorted(starts, reverse=True)


async def test_360_of_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/360", headers=auth)).status_code == 404


async def test_patient_detail_carries_the_statistics(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    pid = patient["id"]
    await records.appointment(pid, ago(days=1), status="checked_in")
    upcoming = await records.appointment(pid, ahead(hours=3))
    await records.journey_instance(pid)
    await records.ticket(pid, status="waiting_on_patient")
    await records.communication(pid)
    detail = (await client.get(f"{BASE}/{pid}", headers=auth)).json()
    assert detail["total_appointments"] == 2
    assert detail["upcoming_appointments"] == 1
    assert when(detail["next_appointment_date"]) == upcoming.start_time
    assert detail["last_visit_date"] is not None
    assert (detail["active_journeys"], detail["open_tickets"], detail["total_communications"]) == (1, 1, 1)


async def test_patient_appointments_are_paginated_latest_first(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    old = await records.appointment(patient["id"], ago(days=30), status="completed")
    new = await records.appointment(patient["id"], ahead(days=1))
    resp = await client.get(f"{BASE}/{patient['id']}/appointments", params={"page_size": 1}, headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["total"], body["has_next"], [a["id"] for a in body["items"]]) == (2, True, [str(new.id)])
    second = (
        await client.get(
            f"{BASE}/{patient['id']}/appointments", params={"page": 2, "page_size": 1}, headers=auth
        )
    ).json()
    assert [a["id"] for a in second["items"]] == [str(old.id)]


async def test_patient_appointments_filter_upcoming_and_status(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    past = await records.appointment(patient["id"], ago(days=2), status="completed")
    later = await records.appointment(patient["id"], ahead(days=8))
    sooner = await records.appointment(patient["id"], ahead(days=1), status="confirmed")
    await records.appointment(patient["id"], ahead(days=4), status="cancelled")
    url = f"{BASE}/{patient['id']}/appointments"

    upcoming = (await client.get(url, params={"upcoming": True}, headers=auth)).json()
    assert [a["id"] for a in upcoming["items"]] == [str(sooner.id), str(later.id)]
    history = (await client.get(url, params={"upcoming": False}, headers=auth)).json()
    assert [a["id"] for a in history["items"]] == [str(past.id)]
    cancelled = (await client.get(url, params={"status": "cancelled"}, headers=auth)).json()
    assert cancelled["total"] == 1


async def test_patient_appointments_of_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/appointments", headers=auth)).status_code == 404


@pytest.mark.parametrize("params", [{"status": "lost"}, {"page_size": 101}])
async def test_patient_appointments_with_bad_filters_is_422(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, params: dict
) -> None:
    patient = await create_patient()
    resp = await client.get(f"{BASE}/{patient['id']}/appointments", params=params, headers=auth)
    assert resp.status_code == 422


async def test_conversations_list_both_directions_newest_first(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    other = await create_patient(first_name="Someone", last_name="Else")
    sent = await records.communication(patient["id"], message="Reminder: tomorrow 10:00")
    reply = await records.communication(patient["id"], direction="inbound", status="received", message="OK")
    await records.communication(other["id"])
    resp = await client.get(f"{BASE}/{patient['id']}/conversations", headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert body["total"] == 2
    assert [(c["id"], c["direction"]) for c in body["items"]] == [
        (str(reply.id), "inbound"),
        (str(sent.id), "outbound"),
    ]


async def test_conversations_filter_by_channel(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    patient = await create_patient()
    await records.communication(patient["id"], channel="sms")
    email = await records.communication(patient["id"], channel="email", subject="Results")
    resp = await client.get(
        f"{BASE}/{patient['id']}/conversations", params={"channel": "email"}, headers=auth
    )
    assert [c["id"] for c in resp.json()["items"]] == [str(email.id)]


async def test_conversations_with_an_unknown_channel_is_422(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    resp = await client.get(f"{BASE}/{patient['id']}/conversations", params={"channel": "fax"}, headers=auth)
    assert resp.status_code == 422


async def test_conversations_of_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/conversations", headers=auth)).status_code == 404
