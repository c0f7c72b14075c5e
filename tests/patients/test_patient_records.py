"""Registering, reading, changing, retiring and reactivating patients."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from tests.patients.support import BASE, CreatePatient, patient_body


async def test_create_returns_201_with_contact_details_normalised(
    client: httpx.AsyncClient, auth: dict, tenant_id: uuid.UUID
) -> None:
    resp = await client.post(BASE, json=patient_body(phone_primary="(415) 555-2671"), headers=auth)
    assert resp.status_code == 201, resp.text
    patient = resp.json()
    assert patient["phone_primary"] == "+14155552671"
    assert patient["email_primary"] == "john.smith@example.com"
    assert patient["tenant_id"] == str(tenant_id)
    assert patient["status"] == "active"
    assert patient["full_name"] == "John Smith"
    assert patient["merged_into_id"] is None


async def test_create_without_mrn_generates_one(create_patient: CreatePatient) -> None:
    first, second = await create_patient(), await create_patient()
    assert re.fullmatch(r"MRN-[A-Z2-7]{10}", first["mrn"])
    assert first["mrn"] != second["mrn"]


async def test_create_keeps_a_given_mrn_upper_cased(create_patient: CreatePatient) -> None:
    patient = await create_patient(mrn=" ab-1001 ")
    assert patient["mrn"] == "AB-1001"


async def test_create_with_a_taken_mrn_is_409(
    create_patient: CreatePatient, client: httpx.AsyncClient, auth: dict
) -> None:
    await create_patient(mrn="MRN-TAKEN-1")
    resp = await client.post(BASE, json=patient_body(mrn="mrn-taken-1"), headers=auth)
    assert resp.status_code == 409
    assert resp.json() == {"detail": "A patient with this MRN already exists."}


async def test_the_same_mrn_in_another_tenant_is_allowed(
    create_patient: CreatePatient, client: httpx.AsyncClient, other_tenant_headers: object
) -> None:
    await create_patient(mrn="MRN-SHARED-1")
    other = await other_tenant_headers()  # type: ignore[operator]
    resp = await client.post(BASE, json=patient_body(mrn="MRN-SHARED-1"), headers=other)
    assert resp.status_code == 201


async def test_create_accepts_every_documented_field(client: httpx.AsyncClient, auth: dict) -> None:
    body = patient_body(
        middle_name="Q",
        phone_secondary="+44 20 7946 0958",
        address_line1="1 Market St",
        address_line2="Suite 2",
        state="CA",
        postal_code="94105",
        country="US",
        preferred_language="es-MX",
        preferred_channel="whatsapp",
        timezone="America/Los_Angeles",
        meta_data={"source": "referral"},
    )
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    patient = resp.json()
    assert patient["phone_secondary"] == "+442079460958"
    assert patient["timezone"] == "America/Los_Angeles"
    assert patient["full_name"] == "John Q Smith"
    assert patient["meta_data"] == {"source": "referral"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"first_name": ""}, "first_name"),
        ({"last_name": None}, "last_name"),
        ({"date_of_birth": (date.today() + timedelta(days=2)).isoformat()}, "date_of_birth"),
        ({"gender": "robot"}, "gender"),
        ({"phone_primary": "12"}, "phone_primary"),
        ({"email_primary": "not-an-email"}, "email_primary"),
        ({"preferred_channel": "fax"}, "preferred_channel"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"preferred_language": "english please"}, "preferred_language"),
        ({"mrn": "#bad"}, "mrn"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"status": "inactive"}, "status"),
        ({"merged_into_id": str(uuid.uuid4())}, "merged_into_id"),
        ({"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ],
)
async def test_invalid_or_server_owned_field_on_create_is_422_naming_it(
    client: httpx.AsyncClient, auth: dict, overrides: dict, field: str
) -> None:
    resp = await client.post(BASE, json=patient_body(**overrides), headers=auth)
    assert resp.status_code == 422
    assert any(err["loc"][-1] == field for err in resp.json()["detail"])


async def test_invalid_contact_details_are_not_echoed_back(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(BASE, json=patient_body(email_primary="private-value-xyz"), headers=auth)
    assert resp.status_code == 422
    assert "private-value-xyz" not in resp.text


async def test_create_with_another_tenants_id_is_403(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(BASE, json=patient_body(tenant_id=str(uuid.uuid4())), headers=auth)
    assert resp.status_code == 403


async def test_create_with_own_tenant_id_is_accepted(
    client: httpx.AsyncClient, auth: dict, tenant_id: uuid.UUID
) -> None:
    resp = await client.post(BASE, json=patient_body(tenant_id=str(tenant_id)), headers=auth)
    assert resp.status_code == 201


async def test_get_returns_demographics_with_zero_statistics_for_a_new_patient(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient(date_of_birth="1990-01-01")
    resp = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status_code == 200
    detail = resp.json()
    assert detail["mrn"] == created["mrn"]
    assert detail["age"] >= 35
    assert {k: detail[k] for k in ("total_appointments", "upcoming_appointments", "active_journeys")} == {
        "total_appointments": 0,
        "upcoming_appointments": 0,
        "active_journeys": 0,
    }
    assert (detail["open_tickets"], detail["total_communications"]) == (0, 0)
    assert (detail["last_visit_date"], detail["next_appointment_date"]) == (None, None)


async def test_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{BASE}/{uuid.uuid4()}", headers=auth)
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Patient not found."}


async def test_malformed_patient_id_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/not-a-uuid", headers=auth)).status_code == 422


async def test_get_by_mrn_finds_the_patient_in_any_case(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient(mrn="MRN-LOOKUP-7")
    resp = await client.get(f"{BASE}/mrn/mrn-lookup-7", headers=auth)
    assert resp.status_code == 200
    assert resp.json()["id"] == created["id"]


async def test_get_by_unknown_mrn_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{BASE}/mrn/MRN-NOPE", headers=auth)
    assert resp.status_code == 404


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    resp = await client.patch(
        f"{BASE}/{created['id']}", json={"city": "Oakland", "phone_primary": "415-555-0100"}, headers=auth
    )
    assert resp.status_code == 200
    patient = resp.json()
    assert (patient["city"], patient["phone_primary"]) == ("Oakland", "+14155550100")
    assert (patient["first_name"], patient["mrn"], patient["email_primary"]) == (
        created["first_name"],
        created["mrn"],
        created["email_primary"],
    )


async def test_patch_can_clear_an_optional_field(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    resp = await client.patch(f"{BASE}/{created['id']}", json={"email_primary": None}, headers=auth)
    assert resp.json()["email_primary"] is None


async def test_patch_can_record_a_death(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    resp = await client.patch(f"{BASE}/{created['id']}", json={"status": "deceased"}, headers=auth)
    assert resp.status_code == 200
    assert resp.json()["status"] == "deceased"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": None}, "first_name"),
        ({"mrn": None}, "mrn"),
        ({"status": "merged"}, "status"),
        ({"tenant_id": str(uuid.uuid4())}, "tenant_id"),
        ({"merged_into_id": str(uuid.uuid4())}, "merged_into_id"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
    ],
)
async def test_invalid_patch_is_422(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, body: dict, field: str
) -> None:
    created = await create_patient()
    resp = await client.patch(f"{BASE}/{created['id']}", json=body, headers=auth)
    assert resp.status_code == 422
    assert any(err["loc"][-1] == field for err in resp.json()["detail"])


async def test_patch_to_another_patients_mrn_is_409_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    first, second = await create_patient(mrn="MRN-FIRST"), await create_patient(mrn="MRN-SECOND")
    resp = await client.patch(
        f"{BASE}/{second['id']}", json={"mrn": first["mrn"], "city": "Elsewhere"}, headers=auth
    )
    assert resp.status_code == 409
    assert resp.json() == {"detail": "A patient with this MRN already exists."}
    unchanged = (await client.get(f"{BASE}/{second['id']}", headers=auth)).json()
    assert (unchanged["mrn"], unchanged["city"]) == ("MRN-SECOND", second["city"])


async def test_patch_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.patch(f"{BASE}/{uuid.uuid4()}", json={"city": "X"}, headers=auth)
    assert resp.status_code == 404


async def test_delete_is_a_soft_delete_to_inactive(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    resp = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status_code == 200
    assert resp.json() == {
        "success": True,
        "message": "Patient deleted successfully",
        "patient_id": created["id"],
    }
    still_there = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert still_there.json()["status"] == "inactive"


async def test_delete_keeps_a_deceased_patient_deceased(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    await client.patch(f"{BASE}/{created['id']}", json={"status": "deceased"}, headers=auth)
    assert (await client.delete(f"{BASE}/{created['id']}", headers=auth)).status_code == 200
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).json()["status"] == "deceased"


async def test_delete_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.delete(f"{BASE}/{uuid.uuid4()}", headers=auth)).status_code == 404


async def test_activate_brings_back_a_deleted_patient(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    await client.delete(f"{BASE}/{created['id']}", headers=auth)
    resp = await client.post(f"{BASE}/{created['id']}/activate", headers=auth)
    assert resp.status_code == 200
    assert resp.json()["status"] == "active"


async def test_activate_an_active_patient_changes_nothing(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    resp = await client.post(f"{BASE}/{created['id']}/activate", headers=auth)
    assert (resp.status_code, resp.json()["status"]) == (200, "active")


async def test_activate_a_deceased_patient_is_409(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    created = await create_patient()
    await client.patch(f"{BASE}/{created['id']}", json={"status": "deceased"}, headers=auth)
    resp = await client.post(f"{BASE}/{created['id']}/activate", headers=auth)
    assert resp.status_code == 409
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).json()["status"] == "deceased"


async def test_activate_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.post(f"{BASE}/{uuid.uuid4()}/activate", headers=auth)).status_code == 404


async def test_timestamps_are_set_by_the_server(create_patient: CreatePatient) -> None:
    patient = await create_patient()
    created_at = datetime.fromisoformat(patient["created_at"])
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=5)
