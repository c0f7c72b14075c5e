"""Finding duplicate records and merging them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from core.database import bind_tenant
from domain.patients.models import ChannelConsent
from tests.patients.support import BASE, CreatePatient, Records, ago, ahead

MERGE = f"{BASE}/merge"


def merge_body(primary: dict, duplicate: dict) -> dict:
    return {"primary_patient_id": primary["id"], "duplicate_patient_id": duplicate["id"]}


async def test_duplicates_rank_same_phone_and_birth_date_above_a_similar_name(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient(
        first_name="John", last_name="Smith", date_of_birth="1980-04-12", phone_primary="+14155552671"
    )
    same_phone_and_dob = await create_patient(
        first_name="Johnny",
        last_name="Smithe",
        date_of_birth="1980-04-12",
        phone_primary="+14155552671",
        email_primary=None,
    )
    similar_name = await create_patient(
        first_name="Jon",
        last_name="Smyth",
        date_of_birth="1975-01-01",
        phone_primary="+14155550000",
        email_primary=None,
    )
    await create_patient(
        first_name="Maria", last_name="Lopez", phone_primary="+14155559999", email_primary=None
    )

    resp = await client.get(f"{BASE}/{patient['id']}/duplicates", headers=auth)
    assert resp.status_code == 200
    candidates = resp.json()
    assert [c["patient"]["id"] for c in candidates] == [same_phone_and_dob["id"], similar_name["id"]]
    first, second = candidates
    assert {"same_phone", "same_dob_similar_name"} <= set(first["reasons"])
    assert second["reasons"] == ["similar_name"]
    assert 0 < second["score"] < first["score"] <= 1


async def test_duplicates_find_a_shared_email(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient(first_name="Ann", last_name="Lee", email_primary="ann@example.org")
    twin = await create_patient(
        first_name="Zed",
        last_name="Quinn",
        email_primary="ANN@example.org",
        phone_primary=None,
        date_of_birth=None,
    )
    candidates = (await client.get(f"{BASE}/{patient['id']}/duplicates", headers=auth)).json()
    assert [(c["patient"]["id"], c["reasons"]) for c in candidates] == [(twin["id"], ["same_email"])]


async def test_duplicates_exclude_the_patient_itself_and_merged_records(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    merged_away = await create_patient()
    assert (await client.post(MERGE, json=merge_body(patient, merged_away), headers=auth)).status_code == 200
    candidates = (await client.get(f"{BASE}/{patient['id']}/duplicates", headers=auth)).json()
    assert candidates == []


async def test_duplicates_of_unknown_patient_is_404(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/duplicates", headers=auth)).status_code == 404


async def test_duplicates_limit_above_50_is_422(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    resp = await client.get(f"{BASE}/{patient['id']}/duplicates", params={"limit": 51}, headers=auth)
    assert resp.status_code == 422


async def test_merge_moves_everything_the_duplicate_owns_and_retires_it(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    primary, duplicate = await create_patient(), await create_patient(first_name="Jon")
    dup = duplicate["id"]
    await records.appointment(primary["id"], ago(days=10), status="completed")
    for days in (1, 2):
        await records.appointment(dup, ahead(days=days))
    await records.appointment(dup, ago(days=3), status="completed")
    for _ in range(2):
        await records.communication(dup)
    await records.ticket(dup)
    await records.journey_instance(dup)

    resp = await client.post(MERGE, json=merge_body(primary, duplicate), headers=auth)

    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["success"], result["primary_patient_id"], result["merged_patient_id"]) == (
        True,
        primary["id"],
        dup,
    )
    assert result["moved"] == {
        "appointments": 3,
        "communications": 2,
        "tickets": 1,
        "journey_instances": 1,
        "channel_consents": 0,
    }
    survivor = (await client.get(f"{BASE}/{primary['id']}/360", headers=auth)).json()
    assert (survivor["total_appointments"], survivor["upcoming_appointments"]) == (4, 2)
    assert (survivor["open_tickets"], survivor["active_journeys"], survivor["recent_communications"]) == (
        1,
        1,
        2,
    )
    retired = (await client.get(f"{BASE}/{dup}", headers=auth)).json()
    assert (retired["status"], retired["merged_into_id"]) == ("inactive", primary["id"])
    assert retired["merged_at"] is not None
    assert retired["total_appointments"] == 0


async def test_merge_carries_consents_and_an_opt_out_on_either_record_wins(
    client: httpx.AsyncClient,
    auth: dict,
    create_patient: CreatePatient,
    records: Records,
    system_sessionmaker: object,
    tenant_id: uuid.UUID,
) -> None:
    primary, duplicate = await create_patient(), await create_patient()
    await records.consent(primary["id"], "sms", opted_out=False)
    await records.consent(duplicate["id"], "sms", opted_out=True)
    await records.consent(duplicate["id"], "email", opted_out=False)

    result = (await client.post(MERGE, json=merge_body(primary, duplicate), headers=auth)).json()

    assert result["moved"]["channel_consents"] == 2
    async with system_sessionmaker() as session:  # type: ignore[operator]
        bind_tenant(session, tenant_id)
        rows = (await session.scalars(select(ChannelConsent))).all()
    assert {(str(c.patient_id), c.channel, c.opted_out) for c in rows} == {
        (primary["id"], "sms", True),
        (primary["id"], "email", False),
    }


async def test_records_merged_earlier_follow_their_survivor_into_the_next_merge(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    oldest, middle, final = await create_patient(), await create_patient(), await create_patient()
    await client.post(MERGE, json=merge_body(middle, oldest), headers=auth)
    await client.post(MERGE, json=merge_body(final, middle), headers=auth)
    assert (await client.get(f"{BASE}/{oldest['id']}", headers=auth)).json()["merged_into_id"] == final["id"]


async def test_merging_a_patient_into_itself_is_409(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    resp = await client.post(MERGE, json=merge_body(patient, patient), headers=auth)
    assert resp.status_code == 409
    assert resp.json() == {"detail": "A patient cannot be merged into itself."}


async def test_merging_an_already_merged_patient_is_409(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    primary, duplicate, third = await create_patient(), await create_patient(), await create_patient()
    assert (await client.post(MERGE, json=merge_body(primary, duplicate), headers=auth)).status_code == 200
    again = await client.post(MERGE, json=merge_body(third, duplicate), headers=auth)
    assert again.status_code == 409
    into_merged = await client.post(MERGE, json=merge_body(duplicate, third), headers=auth)
    assert into_merged.status_code == 409


async def test_merge_with_an_unknown_patient_is_404_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    body = {"primary_patient_id": str(uuid.uuid4()), "duplicate_patient_id": patient["id"]}
    assert (await client.post(MERGE, json=body, headers=auth)).status_code == 404
    assert (await client.get(f"{BASE}/{patient['id']}", headers=auth)).json()["merged_into_id"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"primary_patient_id": str(uuid.uuid4())},
        {"primary_patient_id": "nope", "duplicate_patient_id": str(uuid.uuid4())},
        {"primary_patient_id": str(uuid.uuid4()), "duplicate_patient_id": str(uuid.uuid4()), "force": True},
    ],
)
async def test_invalid_merge_body_is_422(client: httpx.AsyncClient, auth: dict, body: dict) -> None:
    assert (await client.post(MERGE, json=body, headers=auth)).status_code == 422


async def test_a_merged_patient_cannot_be_reactivated(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    primary, duplicate = await create_patient(), await create_patient()
    await client.post(MERGE, json=merge_body(primary, duplicate), headers=auth)
    assert (await client.post(f"{BASE}/{duplicate['id']}/activate", headers=auth)).status_code == 409
    patch = await client.patch(f"{BASE}/{duplicate['id']}", json={"status": "active"}, headers=auth)
    assert patch.status_code == 409
    assert (await client.get(f"{BASE}/{duplicate['id']}", headers=auth)).json()["status"] == "inactive"


async def test_concurrent_merges_of_the_same_duplicate_let_exactly_one_win(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, records: Records
) -> None:
    first, second, duplicate = await create_patient(), await create_patient(), await create_patient()
    await records.appointment(duplicate["id"], ahead(days=1))
    responses = await asyncio.gather(
        client.post(MERGE, json=merge_body(first, duplicate), headers=auth),
        client.post(MERGE, json=merge_body(second, duplicate), headers=auth),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert winner["moved"]["appointments"] == 1
    retired = (await client.get(f"{BASE}/{duplicate['id']}", headers=auth)).json()
    assert retired["merged_into_id"] == winner["primary_patient_id"]
