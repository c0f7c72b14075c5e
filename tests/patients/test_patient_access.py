"""Who may do what: viewers only read, merging needs the merge right, other tenants see nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from core.auth import Role
from tests.patients.support import BASE, CreatePatient, Records, ahead, patient_body

Headers = Callable[..., dict[str, str]]


def writes(patient_id: str, other_id: str) -> list[tuple[str, str, dict | None]]:
    """Every write the Patients API offers, aimed at an existing patient."""
    return [
        ("POST", BASE, patient_body()),
        ("PATCH", f"{BASE}/{patient_id}", {"city": "Nowhere"}),
        ("DELETE", f"{BASE}/{patient_id}", None),
        ("POST", f"{BASE}/{patient_id}/activate", None),
        ("POST", f"{BASE}/merge", {"primary_patient_id": other_id, "duplicate_patient_id": patient_id}),
    ]


@pytest.mark.parametrize("write", range(5), ids=["create", "update", "delete", "activate", "merge"])
async def test_viewer_gets_403_on_every_write_and_nothing_changes(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id: uuid.UUID,
    headers_for: Headers,
    create_patient: CreatePatient,
    write: int,
) -> None:
    patient, other = await create_patient(), await create_patient()
    method, url, body = writes(patient["id"], other["id"])[write]
    resp = await client.request(method, url, json=body, headers=headers_for(tenant_id, "viewer"))
    assert resp.status_code == 403
    after = (await client.get(f"{BASE}/{patient['id']}", headers=auth)).json()
    assert (after["city"], after["status"], after["merged_into_id"]) == (patient["city"], "active", None)


async def test_viewer_can_read(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Headers, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    viewer = headers_for(tenant_id, "viewer")
    for path in ("", f"/{patient['id']}", f"/{patient['id']}/360", "/stats/demographics"):
        assert (await client.get(BASE + path, headers=viewer)).status_code == 200, path


async def test_an_operator_who_may_not_read_records_gets_403_on_every_read(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Headers, create_patient: CreatePatient
) -> None:
    """The reads served from the read pool (`api.deps.tenant_reads`) and the others: a role without the read
    permission (the Temporal operator) gets neither."""
    patient = await create_patient()
    operator = headers_for(tenant_id, "operator")
    paths = [
        BASE,
        f"{BASE}/search?query=ab&type=name",
        f"{BASE}/{patient['id']}",
        f"{BASE}/{patient['id']}/360",
        "/api/v1/prm/appointments/today",
        f"/api/v1/prm/appointments/{uuid.uuid4()}",
        f"/api/v1/prm/communications/{uuid.uuid4()}",
        "/api/v1/prm/communications/search?query=hello",
        f"/api/v1/prm/journeys/instances/{uuid.uuid4()}",
    ]
    for path in paths:
        resp = await client.get(path, headers=operator)
        assert resp.status_code == 403, path
        assert resp.json() == {"detail": "Your role does not allow this (read)."}, path


async def test_practitioner_can_edit_patients_but_not_merge_them(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Headers, create_patient: CreatePatient
) -> None:
    patient, other = await create_patient(), await create_patient()
    practitioner = headers_for(tenant_id, "practitioner")
    patch = await client.patch(f"{BASE}/{patient['id']}", json={"city": "Berkeley"}, headers=practitioner)
    assert patch.status_code == 200
    merge = {"primary_patient_id": other["id"], "duplicate_patient_id": patient["id"]}
    assert (await client.post(f"{BASE}/merge", json=merge, headers=practitioner)).status_code == 403


async def test_requests_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(BASE)).status_code == 401


OTHER_TENANT_READS = ["", "/360", "/duplicates", "/appointments", "/conversations"]


@pytest.mark.parametrize("suffix", OTHER_TENANT_READS)
async def test_another_tenants_patient_is_404_on_reads(
    client: httpx.AsyncClient,
    create_patient: CreatePatient,
    other_tenant_headers: Callable[..., Awaitable[dict[str, str]]],
    suffix: str,
) -> None:
    patient = await create_patient()
    resp = await client.get(f"{BASE}/{patient['id']}{suffix}", headers=await other_tenant_headers())
    assert resp.status_code == 404


async def test_another_tenants_patient_is_404_on_writes_and_stays_untouched(
    client: httpx.AsyncClient,
    auth: dict,
    create_patient: CreatePatient,
    other_tenant_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    patient = await create_patient()
    other = await other_tenant_headers()
    theirs = (await client.post(BASE, json=patient_body(), headers=other)).json()
    for method, url, body in writes(patient["id"], theirs["id"])[1:]:
        resp = await client.request(method, url, json=body, headers=other)
        assert resp.status_code == 404, (method, url)
    after = (await client.get(f"{BASE}/{patient['id']}", headers=auth)).json()
    assert (after["city"], after["status"], after["merged_into_id"]) == (patient["city"], "active", None)


async def test_merging_with_another_tenants_patient_is_404(
    client: httpx.AsyncClient,
    auth: dict,
    create_patient: CreatePatient,
    other_tenant_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    mine = await create_patient()
    theirs = (await client.post(BASE, json=patient_body(), headers=await other_tenant_headers())).json()
    for primary, duplicate in ((mine, theirs), (theirs, mine)):
        body = {"primary_patient_id": primary["id"], "duplicate_patient_id": duplicate["id"]}
        assert (await client.post(f"{BASE}/merge", json=body, headers=auth)).status_code == 404


async def test_another_tenants_patients_never_appear_in_lists_searches_or_stats(
    client: httpx.AsyncClient,
    create_patient: CreatePatient,
    records: Records,
    other_tenant_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    patient = await create_patient(first_name="Unique", last_name="Zyxwvut", mrn="MRN-ZYX")
    await records.appointment(patient["id"], ahead(days=1))
    other = await other_tenant_headers()
    responses = [
        await client.get(BASE, params={"search": "Zyxwvut"}, headers=other),
        await client.get(f"{BASE}/search", params={"query": "Zyxwvut"}, headers=other),
        await client.get(f"{BASE}/search", params={"query": "MRN-ZYX", "type": "mrn"}, headers=other),
        await client.get(f"{BASE}/search", params={"query": "5552671", "type": "phone"}, headers=other),
        await client.post(f"{BASE}/search", json={"last_name": "Zyx"}, headers=other),
        await client.get(f"{BASE}/mrn/MRN-ZYX", headers=other),
    ]
    assert all("Zyxwvut" not in r.text and patient["id"] not in r.text for r in responses)
    assert responses[-1].status_code == 404
    assert (await client.get(f"{BASE}/stats/demographics", headers=other)).json()["total"] == 0


async def test_a_practitioner_cannot_reactivate_a_patient_and_a_coordinator_can(
    client: httpx.AsyncClient, auth: dict, tenant_id, headers_for
) -> None:
    created = await client.post(
        "/api/v1/prm/patients", json={"first_name": "Ada", "last_name": "Byron"}, headers=auth
    )
    patient_id = created.json()["id"]
    assert (await client.delete(f"/api/v1/prm/patients/{patient_id}", headers=auth)).status_code == 200
    as_practitioner = headers_for(tenant_id, Role.PRACTITIONER)
    refused = await client.post(f"/api/v1/prm/patients/{patient_id}/activate", headers=as_practitioner)
    assert refused.status_code == 403
    assert (await client.post(f"/api/v1/prm/patients/{patient_id}/activate", headers=auth)).status_code == 200
