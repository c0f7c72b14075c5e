"""`POST /fhir/R4` with a transaction Bundle, as an EHR sends it: patients, practitioners and appointments
upserted by identifier, all or nothing, idempotent, new patients run through the duplicate matcher."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.client_credentials import Scope
from core.database import bind_tenant, mark_system
from core.events import DomainEvent
from tests.audit.support import chain_waiting
from tests.integrations.conftest import ClientFactory, Credentials, bearer_for
from tests.integrations.fhir_support import (
    API,
    EHR_APPT,
    EHR_MRN,
    EHR_STAFF,
    FHIR,
    START,
    appointment,
    entry,
    patient,
    post_bundle,
    practitioner,
    snapshot,
    valid,
)


def clinic_bundle() -> dict[str, Any]:
    """Two patients, a practitioner and an appointment for each, linked by urn:uuid references."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            # Appointments first: the server must import what they reference before them.
            entry(appointment("A-1", "urn:uuid:p1", "urn:uuid:dr", START), "urn:uuid:a1"),
            entry(
                appointment("A-2", "urn:uuid:p2", "urn:uuid:dr", START + timedelta(hours=1)), "urn:uuid:a2"
            ),
            entry(
                patient("E-1", telecom=[{"system": "phone", "value": "+14155550101"}]),
                "urn:uuid:p1",
                ifNoneExist=f"identifier={EHR_MRN}|E-1",
            ),
            entry(patient("E-2", given="Kenji", family="Tanaka", birth="1990-02-03"), "urn:uuid:p2"),
            entry(
                practitioner("S-1"),
                "urn:uuid:dr",
                method="PUT",
                url=f"Practitioner?identifier={EHR_STAFF}|S-1",
            ),
        ],
    }


async def test_a_bundle_imports_patients_practitioners_and_appointments_resolving_references(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], auth: dict[str, str]
) -> None:
    response = await post_bundle(client, fhir_auth, clinic_bundle())

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 5
    locations = [e["response"]["location"] for e in body["entry"]]
    maria = (
        await client.get(f"{FHIR}/Patient", params={"identifier": f"{EHR_MRN}|E-1"}, headers=fhir_auth)
    ).json()
    assert [e["resource"]["id"] for e in maria["entry"]] == [locations[2].split("/")[1]]
    assert maria["entry"][0]["resource"]["telecom"][0]["value"] == "+14155550101"
    booked = (await client.get(f"{API}/appointments/{locations[0].split('/')[1]}", headers=auth)).json()
    assert booked["patient_id"] == locations[2].split("/")[1]
    assert booked["practitioner_id"] == locations[4].split("/")[1]
    assert booked["source_channel"] == "fhir"
    assert datetime.fromisoformat(booked["start_time"]) == START


async def test_the_same_bundle_twice_changes_nothing(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert (await post_bundle(client, fhir_auth, clinic_bundle())).status_code == 200
    before = await snapshot(system_sessionmaker, tenant_id)

    again = await post_bundle(client, fhir_auth, clinic_bundle())

    assert again.status_code == 200
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 5
    assert await snapshot(system_sessionmaker, tenant_id) == before
    assert len(before["patients"]) == 2 and len(before["appointments"]) == 2
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        events = (await session.execute(select(DomainEvent.type, DomainEvent.source))).all()
    # One event per record the first import made, none from the second, each saying it came from the EHR.
    assert sorted(events) == [("appointment.booked", "fhir")] * 2 + [("patient.registered", "fhir")] * 2


async def test_a_conditional_update_changes_only_what_differs(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], auth: dict[str, str]
) -> None:
    await post_bundle(client, fhir_auth, clinic_bundle())
    moved = START + timedelta(days=1)
    update = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(
                patient("E-2", given="Kenji", family="Tanaka-Sato", birth="1990-02-03"),
                method="PUT",
                url=f"Patient?identifier={EHR_MRN}|E-2",
            ),
            entry(
                appointment(
                    "A-1",
                    f"Patient?identifier={EHR_MRN}|E-1",
                    f"Practitioner?identifier={EHR_STAFF}|S-1",
                    moved,
                ),
                method="PUT",
                url=f"Appointment?identifier={EHR_APPT}|A-1",
            ),
            entry(
                appointment(
                    "A-2",
                    f"Patient?identifier={EHR_MRN}|E-2",
                    f"Practitioner?identifier={EHR_STAFF}|S-1",
                    START + timedelta(hours=1),
                    status="cancelled",
                ),
                method="PUT",
                url=f"Appointment?identifier={EHR_APPT}|A-2",
            ),
        ],
    }

    response = await post_bundle(client, fhir_auth, update)

    assert response.status_code == 200, response.text
    [kenji, first, second] = [e["response"]["location"].split("/")[1] for e in response.json()["entry"]]
    assert (await client.get(f"{API}/patients/{kenji}", headers=auth)).json()["last_name"] == "Tanaka-Sato"
    rescheduled = (await client.get(f"{API}/appointments/{first}", headers=auth)).json()
    assert datetime.fromisoformat(rescheduled["start_time"]) == moved
    assert (await client.get(f"{API}/appointments/{second}", headers=auth)).json()["status"] == "cancelled"


async def test_a_bad_bundle_changes_nothing_and_answers_an_operation_outcome_naming_the_entry(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    bundle = clinic_bundle()
    bundle["entry"].append(entry(appointment("A-3", "urn:uuid:nobody", "urn:uuid:dr", START), "urn:uuid:a3"))
    before = await snapshot(system_sessionmaker, tenant_id)

    response = await post_bundle(client, fhir_auth, bundle)

    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "entry[5] (Appointment)" in outcome["issue"][0]["diagnostics"]
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_malformed_bundles_are_4xx_operation_outcomes_and_change_nothing(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await snapshot(system_sessionmaker, tenant_id)
    no_identifier = patient("E-9")
    del no_identifier["identifier"]
    cases: list[tuple[Any, int]] = [
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, 400),
        ({"resourceType": "Patient"}, 400),
        ([1, 2], 400),
        (
            {"resourceType": "Bundle", "type": "transaction", "entry": [entry(patient("E-1", birth="20x"))]},
            400,
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [entry(patient("E-1", birth="2999-01-01"))],
            },
            422,
        ),
        ({"resourceType": "Bundle", "type": "transaction", "entry": [entry(no_identifier)]}, 422),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [entry({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})],
            },
            422,
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [entry(practitioner("S-9"), method="DELETE")],
            },
            422,
        ),
    ]
    for bundle, status in cases:
        response = await post_bundle(client, fhir_auth, bundle)
        assert response.status_code == status, (bundle, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    not_json = await client.post(
        FHIR, content=b"{nope", headers={**fhir_auth, "Content-Type": "application/fhir+json"}
    )
    assert not_json.status_code in (400, 422)
    xml = await client.post(
        FHIR, content=b"<Bundle/>", headers={**fhir_auth, "Content-Type": "application/fhir+xml"}
    )
    assert xml.status_code == 415
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_a_probable_duplicate_is_linked_not_created_again(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    existing = await client.post(
        f"{API}/patients",
        json={
            "first_name": "Maria",
            "last_name": "Garcia",
            "date_of_birth": "1975-06-01",
            "gender": "female",
        },
        headers=auth,
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry(patient("E-1"))]}

    response = await post_bundle(client, fhir_auth, bundle)

    assert response.status_code == 200, response.text
    result = response.json()["entry"][0]["response"]
    assert result["status"] == "200 OK"
    assert result["location"] == f"Patient/{existing.json()['id']}"
    assert "Matched an existing patient" in result["outcome"]["issue"][0]["diagnostics"]
    found = (
        await client.get(f"{FHIR}/Patient", params={"identifier": f"{EHR_MRN}|E-1"}, headers=fhir_auth)
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [existing.json()["id"]]
    assert len((await snapshot(system_sessionmaker, tenant_id))["patients"]) == 1


async def test_a_possible_duplicate_is_created_and_flagged_for_review(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], auth: dict[str, str]
) -> None:
    father = await client.post(
        f"{API}/patients",
        json={
            "first_name": "John",
            "last_name": "Smith",
            "date_of_birth": "1950-01-01",
            "phone_primary": "+14155550199",
        },
        headers=auth,
    )
    son = patient(
        "E-7",
        given="John",
        family="Smith",
        birth="1985-03-03",
        telecom=[{"system": "phone", "value": "+14155550199"}],
    )

    response = await post_bundle(
        client, fhir_auth, {"resourceType": "Bundle", "type": "transaction", "entry": [entry(son)]}
    )

    result = response.json()["entry"][0]["response"]
    assert result["status"] == "201 Created"
    created = (await client.get(f"{API}/patients/{result['location'].split('/')[1]}", headers=auth)).json()
    assert created["meta_data"]["possible_duplicates"] == [father.json()["id"]]


async def test_a_bundle_cannot_reach_another_tenants_patient(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    make_tenant: Any,
    headers_for: Any,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = await make_tenant(name="Other")
    foreign = await client.post(
        f"{API}/patients", json={"first_name": "Ann", "last_name": "Other"}, headers=headers_for(other)
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(practitioner("S-1"), "urn:uuid:dr"),
            entry(appointment("A-9", f"Patient/{foreign.json()['id']}", "urn:uuid:dr", START)),
        ],
    }
    before = await snapshot(system_sessionmaker, tenant_id)

    response = await post_bundle(client, fhir_auth, bundle)

    assert response.status_code == 404
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_an_import_is_audited_and_needs_the_fhir_scope(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    fhir_creds: Credentials,
    make_client: ClientFactory,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    hl7_only = await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))
    assert (await post_bundle(client, hl7_only, clinic_bundle())).status_code == 403

    await post_bundle(client, fhir_auth, clinic_bundle())

    await chain_waiting(system_sessionmaker)
    async with system_sessionmaker() as session:
        mark_system(session)
        audited = await session.scalar(
            select(func.count()).where(
                AuditRecord.tenant_id == tenant_id,
                AuditRecord.action == "fhir.transaction",
                AuditRecord.user_sub == f"client:{fhir_creds.client_id}",
            )
        )
    assert audited == 2  # one record per patient the bundle touched


def _bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _with(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**resource, **changes}


HOSTILE_BUNDLES: list[Any] = [
    _bundle(entry(_with(patient("H-1"), birthDate="1980"))),  # a partial date: valid FHIR, not a birthday
    _bundle(entry(_with(patient("H-1"), gender="bogus"))),
    _bundle(entry(_with(patient("H-1"), name=[{"family": "X" * 500, "given": ["Y"]}]))),
    _bundle(entry(_with(patient("H-1"), name=[{"given": ["Y"]}]))),
    _bundle(entry(_with(patient("H-1"), telecom=[{"system": "phone", "value": "zz-hostile-99"}]))),
    _bundle(entry(_with(patient("H-1"), identifier=[{"system": "s" * 300, "value": "v"}]))),
    _bundle(entry(patient("H-1"), ifNoneExist="name=Smith")),
    _bundle(entry(patient("H-1"), method="PUT", url="Patient/123")),
    _bundle(entry(patient("H-1"), "urn:uuid:x"), entry(patient("H-2"), "urn:uuid:x")),
    _bundle(
        entry(practitioner("S-1"), "urn:uuid:dr"),
        entry(patient("H-1"), "urn:uuid:p"),
        entry(_with(appointment("A-1", "urn:uuid:p", "urn:uuid:dr", START), end=START.isoformat())),
    ),
    _bundle(
        entry(practitioner("S-1"), "urn:uuid:dr"),
        entry(patient("H-1"), "urn:uuid:p"),
        entry(_with(appointment("A-1", "urn:uuid:p", "urn:uuid:dr", START), status="entered-in-error")),
    ),
    _bundle(
        entry(practitioner("S-1"), "urn:uuid:dr"),
        entry(appointment("A-1", "urn:uuid:dr", "urn:uuid:dr", START)),
    ),
    _bundle(
        entry(practitioner("S-1"), "urn:uuid:dr"),
        entry(appointment("A-1", "Patient/not-an-id", "urn:uuid:dr", START)),
    ),
    _bundle(
        entry(practitioner("S-1"), "urn:uuid:dr"),
        entry(appointment("A-1", f"Patient?identifier={EHR_MRN}|nobody", "urn:uuid:dr", START)),
    ),
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "POST", "url": "Patient"}}],
    },
    {"resourceType": "Bundle", "type": "transaction", "entry": "many"},
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient", "name": 5}}],
    },
]


async def test_hostile_bundles_are_refused_with_4xx_outcomes_and_change_nothing(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await snapshot(system_sessionmaker, tenant_id)
    for bundle in HOSTILE_BUNDLES:
        response = await post_bundle(client, fhir_auth, bundle)
        assert 400 <= response.status_code < 500, (bundle, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "zz-hostile" not in response.text and "XXXXX" not in response.text  # no submitted values
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_a_bundle_nested_thousands_deep_is_a_4xx_outcome_and_changes_nothing(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await post_bundle(client, fhir_auth, _bundle(entry(patient("D-1"))))
    before = await snapshot(system_sessionmaker, tenant_id)
    extension = '{"extension": [' * 3000 + "{}" + "]}" * 3000  # past what a JSON parser can recurse
    body = f'{{"resourceType": "Bundle", "type": "transaction", "entry": [{{"resource": {extension}}}]}}'

    response = await client.post(
        FHIR, content=body, headers={**fhir_auth, "Content-Type": "application/fhir+json"}
    )

    assert response.status_code == 422, response.text
    outcome = valid(response.json())
    assert outcome["resourceType"] == "OperationOutcome"
    assert "nests deeper" in outcome["issue"][0]["diagnostics"]
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_the_same_bundle_sent_twice_at_once_is_stored_once(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    import asyncio

    first, second = await asyncio.gather(
        post_bundle(client, fhir_auth, clinic_bundle()), post_bundle(client, fhir_auth, clinic_bundle())
    )

    # The database decides: one import wins, the other sees its rows (200) or lost the race (409, retry).
    assert sorted([first.status_code, second.status_code]) in ([200, 200], [200, 409])
    stored = await snapshot(system_sessionmaker, tenant_id)
    assert (len(stored["patients"]), len(stored["practitioners"]), len(stored["appointments"])) == (2, 1, 2)
    retry = await post_bundle(client, fhir_auth, clinic_bundle())
    assert [e["response"]["status"] for e in retry.json()["entry"]] == ["200 OK"] * 5
    assert await snapshot(system_sessionmaker, tenant_id) == stored


async def test_imported_records_are_searchable_by_every_remaining_parameter(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    locations = [
        e["response"]["location"]
        for e in (await post_bundle(client, fhir_auth, clinic_bundle())).json()["entry"]
    ]
    first_appointment, dr = locations[0].split("/")[1], locations[4].split("/")[1]

    async def search(resource_type: str, **params: Any) -> list[str]:
        bundle = (await client.get(f"{FHIR}/{resource_type}", params=params, headers=fhir_auth)).json()
        return [e["resource"]["id"] for e in valid(bundle).get("entry", [])]

    assert await search("Appointment", identifier=f"{EHR_APPT}|A-1") == [first_appointment]
    assert len(await search("Appointment", practitioner=f"Practitioner/{dr}")) == 2
    assert await search("Appointment", practitioner=str(uuid.uuid4())) == []
    assert await search("Practitioner", identifier=f"{EHR_STAFF}|S-1") == [dr]
    assert await search("Practitioner", _id=dr, _lastUpdated=f"ge{START.year - 1}") == [dr]
    assert len(await search("Patient", gender="female")) == 2
    assert await search("Communication", patient=locations[2], sent="ge2000-01-01") == []


async def test_an_appointment_only_moves_forward_and_a_finished_one_keeps_its_times(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], auth: dict[str, str]
) -> None:
    await post_bundle(client, fhir_auth, clinic_bundle())
    patient_ref, dr_ref = f"Patient?identifier={EHR_MRN}|E-1", f"Practitioner?identifier={EHR_STAFF}|S-1"
    put = {"method": "PUT", "url": f"Appointment?identifier={EHR_APPT}|A-1"}

    async def send(status: str, start: datetime) -> httpx.Response:
        return await post_bundle(
            client,
            fhir_auth,
            _bundle(entry(appointment("A-1", patient_ref, dr_ref, start, status=status), **put)),
        )

    done = await send("fulfilled", START)
    assert done.status_code == 200, done.text
    appointment_id = done.json()["entry"][0]["response"]["location"].split("/")[1]
    assert (await send("checked-in", START + timedelta(hours=3))).status_code == 200  # an EHR behind us
    stored = (await client.get(f"{API}/appointments/{appointment_id}", headers=auth)).json()
    assert stored["status"] == "completed"
    assert datetime.fromisoformat(stored["start_time"]) == START
    refused = await send("cancelled", START)
    assert refused.status_code == 409
    assert "entry[0] (Appointment)" in refused.json()["issue"][0]["diagnostics"]
