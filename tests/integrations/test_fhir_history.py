"""vread of past versions: every write of a patient, practitioner or appointment leaves its version behind
(the FHIR API, transaction Bundles, the REST API, a merge), readable at `_history/{vid}` by its tenant only,
and gone with its record."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.client_credentials import Scope
from core.database import mark_system
from domain.fhir.history import FhirResourceVersion
from domain.patients.models import Patient
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.fhir_support import (
    API,
    EHR_APPT,
    EHR_MRN,
    START,
    appointment,
    entry,
    fhir_request,
    patient,
    practitioner,
)

send = fhir_request  # every request here must be answered in FHIR JSON that validates


def city(resource: dict[str, Any]) -> str | None:
    return resource.get("address", [{}])[0].get("city")


async def test_vread_serves_each_past_version_of_a_resource_updated_through_fhir(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    made = (await send(client, fhir_auth, "POST", "Patient", json=patient("H-1"))).json()
    pid = made["id"]
    for town in ("Lisbon", "Porto"):
        current = (await send(client, fhir_auth, "GET", f"Patient/{pid}")).json()
        moved = await send(
            client, fhir_auth, "PUT", f"Patient/{pid}", json={**current, "address": [{"city": town}]}
        )
        assert moved.status_code == 200, moved.text

    versions = [await send(client, fhir_auth, "GET", f"Patient/{pid}/_history/{v}") for v in (1, 2, 3)]

    assert [r.status_code for r in versions] == [200, 200, 200]
    assert [r.json()["meta"]["versionId"] for r in versions] == ["1", "2", "3"]
    assert [r.headers["etag"] for r in versions] == ['W/"1"', 'W/"2"', 'W/"3"']
    assert [city(r.json()) for r in versions] == [None, "Lisbon", "Porto"]
    assert {"system": EHR_MRN, "value": "H-1"} in versions[0].json()["identifier"]


async def test_a_version_that_never_was_is_404_naming_the_current_one(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    pid = (await send(client, fhir_auth, "POST", "Patient", json=patient("H-2"))).json()["id"]

    answers = [
        await send(client, fhir_auth, "GET", f"Patient/{pid}/_history/{v}")
        for v in ("0", "2", "x", "99999999999999")
    ]
    unknown = await send(client, fhir_auth, "GET", f"Patient/{uuid.uuid4()}/_history/1")

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert "current version is 1" in answers[1].json()["issue"][0]["diagnostics"]
    assert unknown.status_code == 404


async def test_another_tenants_past_versions_are_404(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], make_tenant: Any, make_client: ClientFactory
) -> None:
    made = (await send(client, fhir_auth, "POST", "Patient", json=patient("H-3"))).json()
    await send(
        client, fhir_auth, "PUT", f"Patient/{made['id']}", json={**made, "address": [{"city": "Faro"}]}
    )
    other = await bearer_for(client, await make_client(await make_tenant(), (Scope.FHIR,)))

    theirs = await send(client, other, "GET", f"Patient/{made['id']}/_history/1")

    assert theirs.status_code == 404


async def test_the_rest_api_and_transaction_bundles_leave_their_versions_too(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], headers_for: Any, tenant_id: uuid.UUID
) -> None:
    coordinator = headers_for(tenant_id, "coordinator")
    registered = await client.post(
        f"{API}/patients",
        json={"first_name": "Rita", "last_name": "Lobo", "date_of_birth": "1970-01-02", "city": "Braga"},
        headers=coordinator,
    )
    pid = registered.json()["id"]
    patched = await client.patch(f"{API}/patients/{pid}", json={"city": "Evora"}, headers=coordinator)
    assert patched.status_code == 200, patched.text
    practitioner_id = (
        await send(client, fhir_auth, "POST", "Practitioner", json=practitioner("S-1"))
    ).json()["id"]
    booked = appointment("A-1", f"Patient/{pid}", f"Practitioner/{practitioner_id}", START)
    made = (await send(client, fhir_auth, "POST", "Appointment", json=booked)).json()
    cancelled = {**booked, "status": "cancelled"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry(cancelled, method="PUT", url=f"Appointment?identifier={EHR_APPT}|A-1")],
    }
    imported = await send(client, fhir_auth, "POST", "", json=bundle)
    assert imported.status_code == 200, imported.text

    first_patient = await send(client, fhir_auth, "GET", f"Patient/{pid}/_history/1")
    first_appointment = await send(client, fhir_auth, "GET", f"Appointment/{made['id']}/_history/1")
    now_appointment = await send(client, fhir_auth, "GET", f"Appointment/{made['id']}")

    assert city(first_patient.json()) == "Braga"
    assert city((await send(client, fhir_auth, "GET", f"Patient/{pid}/_history/2")).json()) == "Evora"
    assert first_appointment.json()["status"] == "booked"
    assert now_appointment.json()["status"] == "cancelled"
    assert now_appointment.json()["meta"]["versionId"] != "1"


async def created_id(client: httpx.AsyncClient, auth: dict[str, str], resource: dict[str, Any]) -> str:
    """The id of a resource created through the FHIR API."""
    response = await send(client, auth, "POST", resource["resourceType"], json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_merge_leaves_a_version_of_each_record_it_changes_and_keeps_the_earlier_ones(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], headers_for: Any, tenant_id: uuid.UUID
) -> None:
    survivor = await created_id(client, fhir_auth, patient("M-1", given="Ines"))
    duplicate = await created_id(client, fhir_auth, patient("M-2", given="Joana", family="Silva"))
    earlier = await created_id(client, fhir_auth, patient("M-3", given="Rosa", family="Costa"))
    doctor = await created_id(client, fhir_auth, practitioner("S-2"))
    visit = await created_id(
        client, fhir_auth, appointment("A-2", f"Patient/{duplicate}", f"Practitioner/{doctor}", START)
    )
    admin = headers_for(tenant_id, "admin")
    for kept, folded in ((duplicate, earlier), (survivor, duplicate)):  # the second redirects the first
        merged = await client.post(
            f"{API}/patients/merge",
            json={"primary_patient_id": kept, "duplicate_patient_id": folded},
            headers=admin,
        )
        assert merged.status_code == 200, merged.text

    async def versions(path: str) -> list[dict[str, Any]]:
        current = (await send(client, fhir_auth, "GET", path)).json()
        past = [
            (await send(client, fhir_auth, "GET", f"{path}/_history/{v}")).json()
            for v in range(1, int(current["meta"]["versionId"]))
        ]
        return [*past, current]

    def links(resource: dict[str, Any]) -> str | None:
        return resource["link"][0]["other"]["reference"] if "link" in resource else None

    duplicates = await versions(f"Patient/{duplicate}")
    assert duplicates[0]["active"] is True and links(duplicates[0]) is None
    assert duplicates[-1]["active"] is False and links(duplicates[-1]) == f"Patient/{survivor}"
    # Merged into the duplicate first, then redirected to the survivor by the second merge's bulk update.
    assert [links(v) for v in await versions(f"Patient/{earlier}")][-2:] == [
        f"Patient/{duplicate}",
        f"Patient/{survivor}",
    ]
    visits = await versions(f"Appointment/{visit}")
    assert [v["participant"][0]["actor"]["reference"] for v in (visits[0], visits[-1])] == [
        f"Patient/{duplicate}",
        f"Patient/{survivor}",
    ]


async def test_the_history_of_a_record_goes_with_it(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    made = (await send(client, fhir_auth, "POST", "Patient", json=patient("G-1"))).json()
    await send(
        client, fhir_auth, "PUT", f"Patient/{made['id']}", json={**made, "address": [{"city": "Sines"}]}
    )
    pid = uuid.UUID(made["id"])
    versions = (
        select(func.count()).select_from(FhirResourceVersion).where(FhirResourceVersion.resource_id == pid)
    )

    async with system_sessionmaker() as session:
        mark_system(session)
        kept = await session.scalar(versions)
        await session.execute(delete(Patient).where(Patient.id == pid))
        await session.commit()
        left = await session.scalar(versions)

    assert (kept, left) == (2, 0)
