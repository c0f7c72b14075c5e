"""Practitioners API behaviour."""

from __future__ import annotations

import uuid

import httpx

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


async def test_create_practitioner_returns_201_with_normalised_contact(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(BASE, json=practitioner_body(), headers=auth)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["phone_primary"] == "+14155552671"
    assert data["email_primary"] == "dr.smith@clinic.com"
    assert data["name"] == "Dr. John Smith"
    fetched = await client.get(f"{BASE}/{data['id']}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["license_number"] == data["license_number"]
