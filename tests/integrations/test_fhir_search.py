"""FHIR R4 read and search, as an EHR calls them with its integration token: every answer validates with
the `fhir.resources` models, each search parameter filters, pages link on, and tenants stay apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.client_credentials import Scope
from core.database import bind_tenant, mark_system
from domain.communications.models import Communication
from domain.fhir.identifiers import PATIENT_IDS
from domain.integrations import service
from tests.integrations.conftest import TEST_ACTOR, ClientFactory, Credentials, bearer_for
from tests.integrations.fhir_support import API, FHIR, fhir_get, ids, register, valid


async def test_metadata_is_a_capability_statement_of_fhir_4_0_1(client: httpx.AsyncClient) -> None:
    body = (await fhir_get(client, "metadata", {})).json()

    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    served = {r["type"] for r in body["rest"][0]["resource"]}
    assert served == {"Patient", "Practitioner", "Appointment", "Communication"}


async def test_patient_read_renders_demographics_and_identifiers(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    patient = await register(
        client, auth, mrn="MRN-7", phone_primary="+14155552671", email_primary="j@example.com", city="Oslo"
    )

    body = (await fhir_get(client, f"Patient/{patient['id']}", fhir_auth)).json()

    assert body["id"] == patient["id"]
    assert body["name"][0] == {"use": "official", "family": "Smith", "given": ["John"]}
    assert body["birthDate"] == "1980-04-12"
    [mrn] = [i for i in body["identifier"] if i["system"] == "urn:prm:mrn"]
    assert mrn["value"] == "MRN-7"
    assert mrn["type"]["coding"][0]["code"] == "MR"  # the receiving system tells the MRN by its type
    assert {"system": "phone", "value": "+14155552671", "use": "mobile", "rank": 1} in body["telecom"]
    assert body["active"] is True
    assert body["meta"]["lastUpdated"]


async def test_unknown_ids_and_types_are_404_operation_outcomes(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    for path in (f"Patient/{uuid.uuid4()}", "Patient/not-a-uuid", "Observation"):
        response = await fhir_get(client, path, fhir_auth)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
        assert response.json()["issue"][0]["code"] == "not-found"


async def test_patient_search_by_name_birthdate_identifier_and_id(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    fhir_auth: dict[str, str],
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
) -> None:
    john = await register(client, auth, mrn="A-1")
    jane = await register(client, auth, first_name="Jane", last_name="Doe", date_of_birth="1992-11-30")
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await PATIENT_IDS.add(session, uuid.UUID(jane["id"]), "urn:oid:1.2.3", "EHR-42")
        await session.commit()

    async def search(**params: Any) -> list[str]:
        return ids((await fhir_get(client, "Patient", fhir_auth, **params)).json())

    assert await search(name="smi") == [john["id"]]
    assert await search(name="JANE") == [jane["id"]]
    assert await search(birthdate="1992-11-30") == [jane["id"]]
    assert await search(birthdate="1992") == [jane["id"]]
    assert set(await search(birthdate="ge1980-01-01")) == {john["id"], jane["id"]}
    assert await search(birthdate="lt1990-01-01") == [john["id"]]
    assert await search(identifier="urn:prm:mrn|A-1") == [john["id"]]
    assert await search(identifier="urn:oid:1.2.3|EHR-42") == [jane["id"]]
    assert await search(identifier="EHR-42") == [jane["id"]]
    assert await search(identifier="urn:oid:9.9|EHR-42") == []
    assert await search(_id=jane["id"]) == [jane["id"]]
    assert await search(gender="female") == []


async def test_last_updated_filters_with_prefixes(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    patient = await register(client, auth)
    updated = datetime.fromisoformat(patient["updated_at"])
    before = (updated - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (updated + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def search(*values: str) -> list[str]:
        params = [("_lastUpdated", v) for v in values]
        response = await client.get(f"{FHIR}/Patient", params=params, headers=fhir_auth)
        return ids(valid(response.json()))

    assert await search(f"ge{before}") == [patient["id"]]
    assert await search(f"gt{after}") == []
    assert await search(f"lt{after}") == [patient["id"]]
    assert await search(f"le{before}") == []
    assert await search(f"ge{before}", f"lt{after}") == [patient["id"]]


async def test_search_pages_with_count_and_next_links(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    made = [(await register(client, auth, first_name=f"P{i}"))["id"] for i in range(5)]

    seen: list[str] = []
    bundle = (await fhir_get(client, "Patient", fhir_auth, _count=2, _total="accurate")).json()
    assert bundle["total"] == 5
    while True:
        seen += ids(bundle)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        parts = urlsplit(following[0])
        response = await client.get(f"{parts.path}?{parts.query}", headers=fhir_auth)
        bundle = valid(response.json())
    assert sorted(seen) == sorted(made)


async def test_bad_search_parameters_are_400_operation_outcomes(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    for params in ({"colour": "blue"}, {"birthdate": "yesterday"}, {"_count": "many"}, {"name:fuzzy": "x"}):
        response = await fhir_get(client, "Patient", fhir_auth, **params)
        assert response.status_code == 400
        assert response.json()["issue"][0]["code"] == "invalid"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("&".join(["gender=female"] * 3000), "gender"),
        ("&".join(["name=ada"] * 21), "name"),
        (
            "&".join(f"gender=female&birthdate=ge19{n:02d}&_lastUpdated=ge20{n:02d}" for n in range(17)),
            "50 parameters",
        ),
        ("_id=" + ",".join(str(uuid.uuid4()) for _ in range(101)), "_id"),
    ],
    ids=["3000 repeats", "21 repeats", "51 parameters", "101 alternatives"],
)
async def test_a_search_past_its_size_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], query: str, named: str
) -> None:
    response = await client.get(f"{FHIR}/Patient?{query}", headers=fhir_auth)

    assert response.status_code == 400, response.text
    assert named in valid(response.json())["issue"][0]["diagnostics"]


async def test_a_search_within_its_size_is_answered(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    query = (
        "&".join(["_lastUpdated=ge2020-01-01"] * 20)
        + "&_id="
        + ",".join(str(uuid.uuid4()) for _ in range(100))
    )
    response = await client.get(f"{FHIR}/Patient?{query}", headers=fhir_auth)
    assert response.status_code == 200, response.text


async def test_practitioner_appointment_and_communication_read_and_search(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    fhir_auth: dict[str, str],
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
) -> None:
    patient = await register(client, auth)
    practitioner = (
        await client.post(
            f"{API}/practitioners",
            json={"first_name": "Ada", "last_name": "Lovelace", "license_number": "LIC-9"},
            headers=auth,
        )
    ).json()
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    booked = await client.post(
        f"{API}/appointments",
        json={
            "patient_id": patient["id"],
            "practitioner_id": practitioner["id"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
            "appointment_type": "follow_up",
        },
        headers=auth,
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        message = Communication(
            patient_id=uuid.UUID(patient["id"]),
            appointment_id=uuid.UUID(appointment["id"]),
            channel="sms",
            direction="outbound",
            status="delivered",
            message="See you soon",
            provider_message_id="SM123",
            sent_at=datetime.now(UTC),
        )
        session.add(message)
        await session.commit()

    found = (
        await fhir_get(client, "Practitioner", fhir_auth, identifier="urn:prm:license-number|LIC-9")
    ).json()
    assert ids(found) == [practitioner["id"]]
    assert ids((await fhir_get(client, "Practitioner", fhir_auth, name="love")).json()) == [
        practitioner["id"]
    ]

    read = (await fhir_get(client, f"Appointment/{appointment['id']}", fhir_auth)).json()
    assert read["status"] == "booked"
    actors = {p["actor"]["reference"] for p in read["participant"]}
    assert actors == {f"Patient/{patient['id']}", f"Practitioner/{practitioner['id']}"}
    by_patient = (await fhir_get(client, "Appointment", fhir_auth, patient=f"Patient/{patient['id']}")).json()
    assert ids(by_patient) == [appointment["id"]]
    assert ids((await fhir_get(client, "Appointment", fhir_auth, date=f"ge{start.date()}")).json()) == [
        appointment["id"]
    ]
    assert ids((await fhir_get(client, "Appointment", fhir_auth, status="cancelled")).json()) == []

    messages = (await fhir_get(client, "Communication", fhir_auth, subject=patient["id"])).json()
    assert ids(messages) == [str(message.id)]
    rendered = messages["entry"][0]["resource"]
    assert rendered["status"] == "completed"
    assert rendered["payload"] == [{"contentString": "See you soon"}]
    assert ids((await fhir_get(client, "Communication", fhir_auth, identifier="SM123")).json()) == [
        str(message.id)
    ]


async def test_a_client_sees_nothing_of_another_tenant(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_tenant: Any,
    make_client: ClientFactory,
) -> None:
    patient = await register(client, auth)
    other_creds = await make_client(await make_tenant(name="Other Clinic"))
    other = await bearer_for(client, other_creds)

    assert (await fhir_get(client, f"Patient/{patient['id']}", other)).status_code == 404
    assert (await fhir_get(client, "Patient", other, _total="accurate")).json()["total"] == 0


async def test_patient_reads_are_audited_naming_the_client_and_the_patient(
    client: httpx.AsyncClient,
    app: Any,
    auth: dict[str, str],
    fhir_auth: dict[str, str],
    fhir_creds: Credentials,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    patient = await register(client, auth)
    await fhir_get(client, f"Patient/{patient['id']}", fhir_auth)
    await fhir_get(client, "Patient", fhir_auth, name="smith")
    await app.state.audit_buffer.flush()

    async with system_sessionmaker() as session:
        mark_system(session)
        rows = (
            await session.execute(
                select(AuditRecord.action, AuditRecord.user_sub, AuditRecord.patient_id).where(
                    AuditRecord.tenant_id == fhir_creds.tenant_id, AuditRecord.action.like("fhir.%")
                )
            )
        ).all()
    assert {(r.action, r.patient_id) for r in rows} == {
        ("fhir.patient.read", uuid.UUID(patient["id"])),
        ("fhir.patient.search", uuid.UUID(patient["id"])),
    }
    assert {r.user_sub for r in rows} == {f"client:{fhir_creds.client_id}"}


# ---- who may call ---------------------------------------------------------------------------------------


async def test_a_coordinator_token_never_reaches_fhir_and_a_client_token_never_the_coordinator_api(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    headers_for: Any,
    tenant_id: uuid.UUID,
    fhir_auth: dict[str, str],
) -> None:
    assert (await fhir_get(client, "Patient", auth)).status_code == 401
    assert (await fhir_get(client, "Patient", headers_for(tenant_id, "admin"))).status_code == 401
    assert (await client.get(f"{API}/patients", headers=fhir_auth)).status_code == 401


async def test_no_token_is_401_and_a_client_without_the_fhir_scope_is_403(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory
) -> None:
    assert (await fhir_get(client, "Patient", {})).status_code == 401
    hl7_only = await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))
    response = await fhir_get(client, "Patient", hl7_only)
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"


async def test_rotation_keeps_old_and_new_secrets_working_until_the_old_is_revoked(
    client: httpx.AsyncClient,
    fhir_creds: Credentials,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    old_token = await bearer_for(client, fhir_creds)
    async with system_sessionmaker() as session:
        mark_system(session)
        rotated = await service.rotate_secret(
            session, tenant_id=fhir_creds.tenant_id, client_id=fhir_creds.client_id, actor=TEST_ACTOR
        )
        await session.commit()
    new = Credentials(fhir_creds.tenant_id, fhir_creds.client_id, rotated.secret, rotated.secret_id)
    new_token = await bearer_for(client, new)

    assert (await fhir_get(client, "Patient", old_token)).status_code == 200
    assert (await fhir_get(client, "Patient", new_token)).status_code == 200
    assert await bearer_for(client, fhir_creds)  # the old secret still gets tokens

    async with system_sessionmaker() as session:
        mark_system(session)
        await service.revoke(
            session,
            tenant_id=fhir_creds.tenant_id,
            client_id=fhir_creds.client_id,
            secret_id=fhir_creds.secret_id,
            actor=TEST_ACTOR,
        )
        await session.commit()

    assert (await fhir_get(client, "Patient", old_token)).status_code == 401  # at once, not at expiry
    assert (
        await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": fhir_creds.client_id,
                "client_secret": fhir_creds.secret,
            },
        )
    ).status_code == 401
    assert (await fhir_get(client, "Patient", new_token)).status_code == 200


async def test_a_revoked_client_is_refused_at_once(
    client: httpx.AsyncClient,
    fhir_creds: Credentials,
    fhir_auth: dict[str, str],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with system_sessionmaker() as session:
        mark_system(session)
        await service.revoke(
            session, tenant_id=fhir_creds.tenant_id, client_id=fhir_creds.client_id, actor=TEST_ACTOR
        )
        await session.commit()

    assert (await fhir_get(client, "Patient", fhir_auth)).status_code == 401


@pytest.mark.parametrize("token", ["garbage", ""])
async def test_a_malformed_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(f"{FHIR}/Patient", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


HOSTILE_SEARCHES = [
    ("Patient", {"birthdate": "2026-13-01"}),
    ("Patient", {"birthdate": "2026-02-30"}),
    ("Patient", {"_lastUpdated": "ge9999-12"}),
    ("Patient", {"_lastUpdated": "ap2026-01-01"}),
    ("Patient", {"_count": "1e3"}),
    ("Patient", {"_total": "maybe"}),
    ("Patient", {"_cursor": "not-a-cursor"}),
    ("Patient", {"_offset": "5"}),  # keyset paging: no offsets
    ("Patient", {"identifier": ""}),
    ("Patient", {"name": "x" * 300}),
    ("Patient", {"identifier": ",,,"}),
    ("Appointment", {"status": "waitlisted"}),
    ("Appointment", {"date": "tomorrow"}),
    ("Communication", {"sent": "lt20xx"}),
]


@pytest.mark.parametrize(("resource_type", "params"), HOSTILE_SEARCHES)
async def test_hostile_searches_are_400_operation_outcomes(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], resource_type: str, params: dict[str, str]
) -> None:
    response = await fhir_get(client, resource_type, fhir_auth, **params)
    assert response.status_code == 400, response.text
