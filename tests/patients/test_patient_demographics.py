"""The demographics report of a tenant's patients."""

from __future__ import annotations

import uuid
from datetime import date

import httpx

from tests.patients.support import BASE, CreatePatient

STATS = f"{BASE}/stats/demographics"


def born_years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=1 if today.day > 28 else today.day).isoformat()


async def test_demographics_of_an_empty_tenant_are_all_zero(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(STATS, headers=auth)
    assert resp.status_code == 200
    stats = resp.json()
    assert set(stats) == {
        "total",
        "by_status",
        "by_gender",
        "by_age_group",
        "by_preferred_channel",
        "by_preferred_language",
        "new_this_month",
    }
    assert (stats["total"], stats["new_this_month"]) == (0, 0)
    assert stats["by_status"] == {"active": 0, "inactive": 0, "deceased": 0}
    assert stats["by_age_group"] == {"0-17": 0, "18-34": 0, "35-49": 0, "50-64": 0, "65+": 0, "unknown": 0}
    assert stats["by_preferred_language"] == {}


async def test_demographics_count_patients_several_ways(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    await create_patient(gender="female", date_of_birth=born_years_ago(10), preferred_language="es")
    await create_patient(gender="female", date_of_birth=born_years_ago(30), preferred_channel="whatsapp")
    await create_patient(gender="male", date_of_birth=born_years_ago(70), preferred_channel="email")
    gone = await create_patient(
        gender=None, date_of_birth=None, preferred_channel=None, preferred_language=None
    )
    await client.delete(f"{BASE}/{gone['id']}", headers=auth)

    stats = (await client.get(STATS, headers=auth)).json()

    assert (stats["total"], stats["new_this_month"]) == (4, 4)
    assert stats["by_status"] == {"active": 3, "inactive": 1, "deceased": 0}
    assert stats["by_gender"] == {"male": 1, "female": 2, "other": 0, "unknown": 0, "unspecified": 1}
    assert stats["by_age_group"] == {"0-17": 1, "18-34": 1, "35-49": 0, "50-64": 0, "65+": 1, "unknown": 1}
    assert stats["by_preferred_channel"] == {"whatsapp": 1, "sms": 1, "email": 1, "unspecified": 1}
    assert stats["by_preferred_language"] == {"en": 2, "es": 1, "unspecified": 1}


async def test_demographics_leave_out_merged_duplicates(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    primary, duplicate = await create_patient(), await create_patient()
    body = {"primary_patient_id": primary["id"], "duplicate_patient_id": duplicate["id"]}
    assert (await client.post(f"{BASE}/merge", json=body, headers=auth)).status_code == 200
    stats = (await client.get(STATS, headers=auth)).json()
    assert (stats["total"], stats["by_status"]["inactive"]) == (1, 0)


async def test_demographics_for_another_tenant_id_is_403(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(STATS, params={"tenant_id": str(uuid.uuid4())}, headers=auth)
    assert resp.status_code == 403
