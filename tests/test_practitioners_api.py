"""Practitioners API behaviour."""

from __future__ import annotations

import uuid

import httpx
import pytest

BASE = "/api/v1/prm/practitioners"


def practitioner_body(**overrides: object) -> dict:
    body: dict = {
        "first_name": "John",
        "last_name": "Smith",
        "middle_name": "A",
        "gender": "male",
        "qualification": "MD, FACC",
        "speciality": "Cardiology",
        "sub_speciality": "Interventional Cardiology",
        "license_number": f"MD{uuid.uuid4().hex[:8]}",
        "registration_number": "REG789",
        "phone_primary": "+1 (415) 555-2671",
        "email_primary": "Dr.Smith@Clinic.com",
        "is_active": True,
        "meta_data": {},
    }
    body.update(overrides)
    return body


async def test_create_practitioner_returns_201_with_normalised_contact(
    client: httpx.AsyncClient, auth: dict
) -> None:
    resp = await client.post(BASE, json=practitioner_body(), headers=auth)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["phone_primary"] == "+14155552671"
    assert data["email_primary"] == "dr.smith@clinic.com"
    assert data["name"] == "Dr. John Smith"
    fetched = await client.get(f"{BASE}/{data['id']}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["license_number"] == data["license_number"]


async def create(client: httpx.AsyncClient, auth: dict, **overrides: object) -> dict:
    resp = await client.post(BASE, json=practitioner_body(**overrides), headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_list_is_paginated_with_the_reference_envelope(client: httpx.AsyncClient, auth: dict) -> None:
    for i in range(3):
        await create(client, auth, last_name=f"Paged{i}")
    resp = await client.get(BASE, params={"page": 1, "page_size": 2}, headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"items", "total", "page", "page_size", "has_next", "has_previous"}
    assert (body["total"], body["page"], body["page_size"], body["has_next"], body["has_previous"]) == (
        3,
        1,
        2,
        True,
        False,
    )
    second = (await client.get(BASE, params={"page": 2, "page_size": 2}, headers=auth)).json()
    assert (len(second["items"]), second["has_next"], second["has_previous"]) == (1, False, True)


async def test_page_size_above_100_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(BASE, params={"page_size": 101}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "page_size"]


async def test_list_filters_by_speciality_activity_and_name(client: httpx.AsyncClient, auth: dict) -> None:
    cardio = await create(client, auth, first_name="Maria", last_name="Lopez", speciality="Cardiology")
    await create(client, auth, first_name="Ravi", last_name="Patel", speciality="Dermatology")
    inactive = await create(
        client, auth, first_name="Old", last_name="Timer", speciality="Cardiology", is_active=False
    )

    by_speciality = (await client.get(BASE, params={"speciality": "cardiology"}, headers=auth)).json()
    assert {p["id"] for p in by_speciality["items"]} == {cardio["id"], inactive["id"]}
    active_only = (
        await client.get(BASE, params={"speciality": "Cardiology", "is_active": True}, headers=auth)
    ).json()
    assert [p["id"] for p in active_only["items"]] == [cardio["id"]]
    by_name = (await client.get(BASE, params={"search": "maria lo"}, headers=auth)).json()
    assert [p["id"] for p in by_name["items"]] == [cardio["id"]]


async def test_simple_list_returns_display_names_of_active_practitioners(
    client: httpx.AsyncClient, auth: dict
) -> None:
    active = await create(client, auth, first_name="John", last_name="Smith", speciality="Cardiology")
    await create(client, auth, first_name="Gone", last_name="Away", is_active=False)
    resp = await client.get(f"{BASE}/simple", headers=auth)
    assert resp.status_code == 200
    assert resp.json() == [
        {"id": active["id"], "name": "Dr. John Smith", "speciality": "Cardiology", "is_active": True}
    ]
    everyone = (await client.get(f"{BASE}/simple", params={"active_only": False}, headers=auth)).json()
    assert len(everyone) == 2


async def test_specialities_are_distinct_and_sorted(client: httpx.AsyncClient, auth: dict) -> None:
    for speciality in ("Neurology", "Cardiology", "Neurology", None):
        await create(client, auth, speciality=speciality)
    resp = await client.get(f"{BASE}/specialities", headers=auth)
    assert resp.json() == ["Cardiology", "Neurology"]


async def test_unknown_practitioner_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{BASE}/{uuid.uuid4()}", headers=auth)
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Practitioner not found."}


async def test_malformed_id_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/not-a-uuid", headers=auth)).status_code == 422


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"first_name": ""}, "first_name"),
        ({"phone_primary": "12"}, "phone_primary"),
        ({"email_primary": "not-an-email"}, "email_primary"),
        ({"gender": "robot"}, "gender"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ],
)
async def test_invalid_create_body_is_422_naming_the_field(
    client: httpx.AsyncClient, auth: dict, overrides: dict, field: str
) -> None:
    resp = await client.post(BASE, json=practitioner_body(**overrides), headers=auth)
    assert resp.status_code == 422
    assert any(err["loc"][-1] == field for err in resp.json()["detail"])


async def test_invalid_input_is_not_echoed_back(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(BASE, json=practitioner_body(email_primary="secret-value-xyz"), headers=auth)
    assert resp.status_code == 422
    assert "secret-value-xyz" not in resp.text


async def test_create_with_another_tenants_id_is_403(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(BASE, json=practitioner_body(tenant_id=str(uuid.uuid4())), headers=auth)
    assert resp.status_code == 403
    assert "tenant_id" in resp.json()["detail"]


async def test_create_with_own_tenant_id_is_accepted(
    client: httpx.AsyncClient, auth: dict, tenant_id: uuid.UUID
) -> None:
    resp = await client.post(BASE, json=practitioner_body(tenant_id=str(tenant_id)), headers=auth)
    assert resp.status_code == 201
    assert resp.json()["tenant_id"] == str(tenant_id)


async def test_duplicate_license_number_is_409(client: httpx.AsyncClient, auth: dict) -> None:
    first = await create(client, auth)
    resp = await client.post(
        BASE, json=practitioner_body(license_number=first["license_number"]), headers=auth
    )
    assert resp.status_code == 409
    assert resp.json() == {"detail": "A practitioner with this license number already exists."}


async def test_same_license_number_in_another_tenant_is_allowed(
    client: httpx.AsyncClient, auth: dict, make_tenant: object, headers_for: object
) -> None:
    first = await create(client, auth)
    other = headers_for(await make_tenant())  # type: ignore[operator]
    resp = await client.post(
        BASE, json=practitioner_body(license_number=first["license_number"]), headers=other
    )
    assert resp.status_code == 201


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient, auth: dict) -> None:
    created = await create(client, auth)
    resp = await client.patch(f"{BASE}/{created['id']}", json={"speciality": "Oncology"}, headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert body["speciality"] == "Oncology"
    assert body["first_name"] == created["first_name"]
    assert body["license_number"] == created["license_number"]


async def test_patch_cannot_move_a_practitioner_to_another_tenant(
    client: httpx.AsyncClient, auth: dict
) -> None:
    created = await create(client, auth)
    resp = await client.patch(f"{BASE}/{created['id']}", json={"tenant_id": str(uuid.uuid4())}, headers=auth)
    assert resp.status_code == 422


async def test_patch_unknown_practitioner_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.patch(f"{BASE}/{uuid.uuid4()}", json={"speciality": "X"}, headers=auth)
    assert resp.status_code == 404


async def test_patch_to_a_taken_license_number_is_409(client: httpx.AsyncClient, auth: dict) -> None:
    first, second = await create(client, auth), await create(client, auth)
    resp = await client.patch(
        f"{BASE}/{second['id']}", json={"license_number": first["license_number"]}, headers=auth
    )
    assert resp.status_code == 409
    still = (await client.get(f"{BASE}/{second['id']}", headers=auth)).json()
    assert still["license_number"] == second["license_number"]


async def test_delete_removes_the_practitioner(client: httpx.AsyncClient, auth: dict) -> None:
    created = await create(client, auth)
    resp = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status_code == 204
    assert resp.content == b""
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).status_code == 404


async def test_delete_unknown_practitioner_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.delete(f"{BASE}/{uuid.uuid4()}", headers=auth)).status_code == 404


async def test_delete_of_a_practitioner_with_appointments_is_409_and_keeps_them(
    client: httpx.AsyncClient, auth: dict, tenant_id: uuid.UUID, system_sessionmaker: object
) -> None:
    from datetime import UTC, datetime, timedelta

    from core.database import bind_tenant
    from domain.patients.models import Patient
    from domain.scheduling.models import Appointment

    created = await create(client, auth)
    async with system_sessionmaker() as session:  # type: ignore[operator]
        bind_tenant(session, tenant_id)
        patient = Patient(mrn="MRN-DEL-1", first_name="Pat", last_name="Ient")
        session.add(patient)
        await session.flush()
        start = datetime.now(UTC) + timedelta(days=1)
        session.add(
            Appointment(
                patient_id=patient.id,
                practitioner_id=uuid.UUID(created["id"]),
                start_time=start,
                end_time=start + timedelta(minutes=30),
            )
        )
        await session.commit()
    resp = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status_code == 409
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).status_code == 200
