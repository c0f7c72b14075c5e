"""`/fhir/R4/$subscription-hook`: an EHR's R4 Subscription rest-hook notifications become domain events
(a finished Encounter is `encounter.discharged` with its procedures), once per encounter, all or nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.client_credentials import Scope
from core.database import bind_tenant
from core.events import DomainEvent
from domain.fhir.identifiers import PATIENT_IDS
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.fhir_support import EHR_MRN as IMPORT_MRN
from tests.integrations.fhir_support import EHR_STAFF, FHIR_JSON, START, appointment, patient, practitioner

HOOK = "/fhir/R4/$subscription-hook"
EHR_MRN = "http://genhosp.example.org/mrn"


@pytest.fixture
async def patient_id(
    client: httpx.AsyncClient, auth: dict[str, str], system_sessionmaker, tenant_id
) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A patient the EHR knows by its MRN."""
    resp = await client.post(
        "/api/v1/prm/patients", json={"first_name": "Ana", "last_name": "Lima"}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await PATIENT_IDS.add(session, uuid.UUID(resp.json()["id"]), EHR_MRN, "E-1")
        await session.commit()
    return uuid.UUID(resp.json()["id"])


async def events(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> list[DomainEvent]:
    """The tenant's encounter events."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.scalars(select(DomainEvent).where(DomainEvent.type.like("encounter.%")))
        return list(rows.all())


def encounter(status: str = "finished", subject: dict[str, Any] | None = None) -> dict[str, Any]:
    """An inpatient encounter at General Hospital, naming the patient by their MRN there."""
    return {
        "resourceType": "Encounter",
        "id": "enc-77",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "serviceType": {"text": "Orthopedic surgery"},
        "subject": subject or {"identifier": {"system": EHR_MRN, "value": "E-1"}},
        "period": {"start": "2026-11-30T08:00:00Z", "end": "2026-12-01T10:00:00Z"},
        "location": [{"location": {"display": "Ortho ward"}}],
    }


def notification(*resources: dict[str, Any]) -> dict[str, Any]:
    """A history Bundle carrying the resources, as R4 servers notify."""
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r.get('id', 'x')}"},
                "response": {"status": "200"},
            }
            for r in resources
        ],
    }


KNEE = {
    "resourceType": "Procedure",
    "id": "proc-1",
    "status": "completed",
    "code": {
        "coding": [
            {
                "system": "http://www.ama-assn.org/go/cpt",
                "code": "27447",
                "display": "Total knee arthroplasty",
            }
        ]
    },
    "subject": {"identifier": {"system": EHR_MRN, "value": "E-1"}},
    "encounter": {"reference": "Encounter/enc-77"},
}


@pytest.fixture
async def fhir_hook_auth(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory
) -> dict[str, str]:
    """Headers with a FHIR token of this test's tenant."""
    return await bearer_for(client, await make_client(tenant_id, (Scope.FHIR,)))


async def test_a_finished_encounter_is_a_discharge_with_its_procedures_emitted_once(
    client: httpx.AsyncClient,
    fhir_hook_auth: dict[str, str],
    patient_id: uuid.UUID,
    system_sessionmaker,
    tenant_id,
) -> None:
    body = notification(encounter(), KNEE)

    first = await client.post(HOOK, json=body, headers={**fhir_hook_auth, **FHIR_JSON})
    again = await client.post(HOOK, json=body, headers={**fhir_hook_auth, **FHIR_JSON})

    assert first.status_code == again.status_code == 200, first.text
    OperationOutcome.model_validate(first.json())
    assert "1 event(s) emitted" in first.json()["issue"][0]["diagnostics"]
    assert "1 already received" in again.json()["issue"][0]["diagnostics"]
    [event] = await events(system_sessionmaker, tenant_id)
    assert (event.type, event.patient_id, event.source) == ("encounter.discharged", patient_id, "fhir")
    assert (event.subject_type, event.subject_id) == ("encounter", "enc-77")
    assert event.facts["procedure_codes"] == ["27447"]
    assert event.facts["procedure_names"] == ["Total knee arthroplasty"]
    assert event.facts["speciality"] == "Orthopedic surgery" and event.facts["encounter_class"] == "IMP"


async def test_the_resource_put_to_the_endpoint_is_a_notification_too(
    client: httpx.AsyncClient,
    fhir_hook_auth: dict[str, str],
    patient_id: uuid.UUID,
    system_sessionmaker,
    tenant_id,
) -> None:
    admitted = encounter("in-progress", subject={"reference": f"Patient/{patient_id}"})

    resp = await client.put(
        f"{HOOK}/Encounter/enc-77", json=admitted, headers={**fhir_hook_auth, **FHIR_JSON}
    )

    assert resp.status_code == 200, resp.text
    assert [e.type for e in await events(system_sessionmaker, tenant_id)] == ["encounter.admitted"]


async def test_an_empty_ping_is_acknowledged_and_emits_nothing(
    client: httpx.AsyncClient, fhir_hook_auth: dict[str, str], system_sessionmaker, tenant_id
) -> None:
    resp = await client.post(HOOK, headers=fhir_hook_auth)

    assert resp.status_code == 200
    assert await events(system_sessionmaker, tenant_id) == []


async def test_an_unknown_patient_refuses_the_whole_notification(
    client: httpx.AsyncClient,
    fhir_hook_auth: dict[str, str],
    patient_id: uuid.UUID,
    system_sessionmaker,
    tenant_id,
) -> None:
    stranger = {**encounter(subject={"identifier": {"system": EHR_MRN, "value": "NOBODY"}}), "id": "enc-78"}

    resp = await client.post(
        HOOK, json=notification(encounter(), stranger), headers={**fhir_hook_auth, **FHIR_JSON}
    )

    assert resp.status_code == 422
    assert resp.json()["resourceType"] == "OperationOutcome"
    assert await events(system_sessionmaker, tenant_id) == []  # not even the known patient's


async def test_an_invalid_resource_is_400_and_another_tenants_patient_is_unknown(
    client: httpx.AsyncClient, patient_id: uuid.UUID, make_tenant, make_client: ClientFactory, fhir_hook_auth
) -> None:
    bad = await client.post(HOOK, json={**encounter(), "status": 42}, headers={**fhir_hook_auth, **FHIR_JSON})
    other = await bearer_for(client, await make_client(await make_tenant(name="Other"), (Scope.FHIR,)))
    elsewhere = await client.post(HOOK, json=encounter(), headers={**other, **FHIR_JSON})

    assert bad.status_code == 400
    assert elsewhere.status_code == 422


async def test_the_hook_needs_a_fhir_token(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory, auth: dict[str, str]
) -> None:
    hl7_only = await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))

    assert (await client.post(HOOK, json=encounter(), headers={**auth, **FHIR_JSON})).status_code == 401
    assert (await client.post(HOOK, json=encounter(), headers={**hl7_only, **FHIR_JSON})).status_code == 403


async def all_events(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> list[tuple[str, str]]:
    """(type, source) of every event of the tenant, in order."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.execute(select(DomainEvent.type, DomainEvent.source).order_by(DomainEvent.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_notified_patients_and_appointments_are_upserted_and_emit_their_events_once(
    client: httpx.AsyncClient,
    fhir_hook_auth: dict[str, str],
    auth: dict[str, str],
    system_sessionmaker,
    tenant_id,
) -> None:
    """A Subscription on Patients and Appointments: the notified records are imported by identifier (the
    domain's services emit their events), before the Encounter of the same notification is read."""
    new_patient = patient("E-9", given="Rosa", family="Mendes", birth="1961-03-04")
    visit = appointment(
        "A-9", f"Patient?identifier={IMPORT_MRN}|E-9", f"Practitioner?identifier={EHR_STAFF}|S-9", START
    )
    discharge = encounter(subject={"identifier": {"system": IMPORT_MRN, "value": "E-9"}})
    body = notification(practitioner("S-9"), new_patient, visit, discharge, KNEE | {"subject": {}})
    headers = {**fhir_hook_auth, **FHIR_JSON}

    first = await client.post(HOOK, json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert "3 record(s) imported, 1 event(s) emitted" in first.json()["issue"][0]["diagnostics"]
    expected = [
        ("patient.registered", "fhir"),
        ("appointment.booked", "fhir"),
        ("encounter.discharged", "fhir"),
    ]
    assert await all_events(system_sessionmaker, tenant_id) == expected
    assert (await client.post(HOOK, json=body, headers=headers)).status_code == 200
    assert await all_events(system_sessionmaker, tenant_id) == expected  # a repeat changes nothing

    cancelled = await client.post(HOOK, json=notification({**visit, "status": "cancelled"}), headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (await all_events(system_sessionmaker, tenant_id))[-1] == ("appointment.cancelled", "fhir")
    listed = (await client.get("/api/v1/prm/appointments", headers=auth)).json()
    assert [a["status"] for a in listed["items"]] == ["cancelled"]


async def test_a_notified_record_without_an_identifier_refuses_the_notification(
    client: httpx.AsyncClient,
    fhir_hook_auth: dict[str, str],
    auth: dict[str, str],
    system_sessionmaker,
    tenant_id,
) -> None:
    anonymous = {key: value for key, value in patient("E-10").items() if key != "identifier"}

    resp = await client.post(
        HOOK, json=notification(patient("E-11"), anonymous), headers={**fhir_hook_auth, **FHIR_JSON}
    )

    assert resp.status_code == 422 and resp.json()["resourceType"] == "OperationOutcome"
    assert "identifier" in resp.json()["issue"][0]["diagnostics"]
    assert (await client.get("/api/v1/prm/patients", headers=auth)).json()["total"] == 0  # not even E-11
    assert await all_events(system_sessionmaker, tenant_id) == []


async def test_a_malformed_notified_patient_is_400_not_a_crash(
    client: httpx.AsyncClient, fhir_hook_auth: dict[str, str], auth: dict[str, str]
) -> None:
    broken = {**patient("E-12"), "identifier": ["E-12"]}  # not Identifier objects

    resp = await client.post(HOOK, json=notification(broken), headers={**fhir_hook_auth, **FHIR_JSON})

    assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome"
    assert (await client.get("/api/v1/prm/patients", headers=auth)).json()["total"] == 0
