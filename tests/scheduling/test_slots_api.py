"""Locations and time slots: create, list, block and unblock, with 404 across tenants and 409 on clashes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from tests.scheduling.conftest import API, future


async def test_location_create_get_list_and_patch(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(
        f"{API}/locations", json={"name": "Harbour Clinic", "timezone": "Europe/London"}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    location = resp.json()
    assert (await client.get(f"{API}/locations/{location['id']}", headers=auth)).json()[
        "name"
    ] == "Harbour Clinic"
    listed = (await client.get(f"{API}/locations", headers=auth)).json()
    assert [i["id"] for i in listed["items"]] == [location["id"]]
    patched = await client.patch(f"{API}/locations/{location['id']}", json={"is_active": False}, headers=auth)
    assert patched.json()["is_active"] is False
    assert (await client.get(f"{API}/locations", params={"is_active": True}, headers=auth)).json()[
        "total"
    ] == 0


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "X", "timezone": "Mars/Olympus"}, {"name": "X", "id": "1"}]
)
async def test_invalid_location_is_422(client: httpx.AsyncClient, auth: dict, body: dict) -> None:
    assert (await client.post(f"{API}/locations", json=body, headers=auth)).status_code == 422


async def test_other_tenants_location_and_slot_are_404(
    client: httpx.AsyncClient, auth: dict, make_tenant, headers_for, make_practitioner, make_slot
) -> None:
    other = headers_for(await make_tenant())
    location = (await client.post(f"{API}/locations", json={"name": "Mine"}, headers=auth)).json()
    slot = await make_slot((await make_practitioner())["id"], future())
    assert (await client.get(f"{API}/locations/{location['id']}", headers=other)).status_code == 404
    assert (
        await client.patch(f"{API}/locations/{location['id']}", json={"name": "Theirs"}, headers=other)
    ).status_code == 404
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("POST", "/block"),
        ("POST", "/unblock"),
        ("DELETE", ""),
    ]:
        json = {"capacity": 3} if method == "PATCH" else None
        resp = await client.request(
            method, f"{API}/time-slots/{slot['id']}{suffix}", headers=other, json=json
        )
        assert resp.status_code == 404, (method, suffix)
    assert (await client.get(f"{API}/time-slots", headers=other)).json()["total"] == 0


async def test_slot_for_unknown_practitioner_or_location_is_404(
    client: httpx.AsyncClient, auth: dict, make_practitioner
) -> None:
    start = future()
    body = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
    resp = await client.post(
        f"{API}/time-slots", json={**body, "practitioner_id": str(uuid.uuid4())}, headers=auth
    )
    assert resp.status_code == 404
    practitioner = await make_practitioner()
    resp = await client.post(
        f"{API}/time-slots",
        json={**body, "practitioner_id": practitioner["id"], "location_id": str(uuid.uuid4())},
        headers=auth,
    )
    assert (resp.status_code, resp.json()["detail"]) == (404, "Location not found.")


@pytest.mark.parametrize(
    "override",
    [
        {"capacity": 0},
        {"status": "maybe"},
        {"end_time": "2030-01-01T09:00:00Z", "start_time": "2030-01-01T10:00:00Z"},
        {"start_time": "2030-01-01T10:00:00", "end_time": "2030-01-01T10:30:00"},
    ],
)
async def test_invalid_slot_is_422(
    client: httpx.AsyncClient, auth: dict, make_practitioner, override: dict
) -> None:
    practitioner = await make_practitioner()
    body = {
        "practitioner_id": practitioner["id"],
        "start_time": "2030-01-01T10:00:00Z",
        "end_time": "2030-01-01T10:30:00Z",
        **override,
    }
    assert (await client.post(f"{API}/time-slots", json=body, headers=auth)).status_code == 422


async def test_overlapping_slots_of_one_practitioner_are_409(
    client: httpx.AsyncClient, auth: dict, make_practitioner, make_slot
) -> None:
    practitioner = await make_practitioner()
    first = await make_slot(practitioner["id"], future())
    start = future() + timedelta(minutes=15)
    resp = await client.post(
        f"{API}/time-slots",
        json={
            "practitioner_id": practitioner["id"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
        },
        headers=auth,
    )
    assert resp.status_code == 409
    assert resp.json()["conflicting_slots"] == [first["id"]]
    await make_slot(practitioner["id"], future() + timedelta(minutes=30))  # back to back is fine
    await make_slot((await make_practitioner())["id"], future())  # another practitioner is fine


async def test_list_filters_by_practitioner_location_dates_and_availability(
    client: httpx.AsyncClient, auth: dict, make_practitioner, make_slot, make_patient, book
) -> None:
    a, b = await make_practitioner(), await make_practitioner()
    location = (await client.post(f"{API}/locations", json={"name": "Main"}, headers=auth)).json()
    s1 = await make_slot(a["id"], future(days=2), location_id=location["id"])
    s2 = await make_slot(a["id"], future(days=4))
    s3 = await make_slot(b["id"], future(days=6))
    await book(patient_id=str((await make_patient()).id), time_slot_id=s2["id"])
    await client.post(f"{API}/time-slots/{s3['id']}/block", headers=auth)

    async def ids(**params) -> list[str]:
        resp = await client.get(f"{API}/time-slots", params=params, headers=auth)
        assert resp.status_code == 200, resp.text
        return [i["id"] for i in resp.json()["items"]]

    assert await ids() == [s1["id"], s2["id"], s3["id"]]
    assert await ids(practitioner_id=a["id"]) == [s1["id"], s2["id"]]
    assert await ids(location_id=location["id"]) == [s1["id"]]
    assert await ids(available_only=True) == [s1["id"]]
    assert await ids(status="blocked") == [s3["id"]]
    assert await ids(start_date=future(days=4).date().isoformat()) == [s2["id"], s3["id"]]
    assert await ids(end_date=future(days=4).date().isoformat()) == [s1["id"], s2["id"]]
    assert (await client.get(f"{API}/time-slots", params={"status": "x"}, headers=auth)).status_code == 422


async def test_block_unblock_and_their_409s(
    client: httpx.AsyncClient, auth: dict, make_practitioner, make_slot
) -> None:
    slot = await make_slot((await make_practitioner())["id"], future())
    blocked = await client.post(f"{API}/time-slots/{slot['id']}/block", headers=auth)
    assert (blocked.status_code, blocked.json()["status"]) == (200, "blocked")
    assert (await client.post(f"{API}/time-slots/{slot['id']}/block", headers=auth)).status_code == 409
    opened = await client.post(f"{API}/time-slots/{slot['id']}/unblock", headers=auth)
    assert (opened.status_code, opened.json()["status"]) == (200, "open")
    assert (await client.post(f"{API}/time-slots/{slot['id']}/unblock", headers=auth)).status_code == 409
    assert (await client.post(f"{API}/time-slots/{uuid.uuid4()}/block", headers=auth)).status_code == 404


async def test_capacity_cannot_drop_below_bookings_and_booked_slot_cannot_be_deleted(
    client: httpx.AsyncClient, auth: dict, make_practitioner, make_slot, make_patient, book
) -> None:
    slot = await make_slot((await make_practitioner())["id"], future(), capacity=3)
    for _ in range(2):
        await book(patient_id=str((await make_patient()).id), time_slot_id=slot["id"])
    resp = await client.patch(f"{API}/time-slots/{slot['id']}", json={"capacity": 1}, headers=auth)
    assert resp.status_code == 409
    assert (
        await client.patch(f"{API}/time-slots/{slot['id']}", json={"capacity": 0}, headers=auth)
    ).status_code == 422
    assert (await client.patch(f"{API}/time-slots/{slot['id']}", json={"capacity": 2}, headers=auth)).json()[
        "capacity"
    ] == 2
    assert (await client.delete(f"{API}/time-slots/{slot['id']}", headers=auth)).status_code == 409
    empty = await make_slot((await make_practitioner())["id"], future())
    assert (await client.delete(f"{API}/time-slots/{empty['id']}", headers=auth)).status_code == 204
    assert (await client.get(f"{API}/time-slots/{empty['id']}", headers=auth)).status_code == 404
