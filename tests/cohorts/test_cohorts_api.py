"""The cohorts API: the round trip of a cohort, names, roles, tenants and hostile input."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from tests.cohorts.support import BASE, Clinic, create_cohort
from tests.tenants import TenantFactory

CRITERIA = {"age": {"min": 50, "max": 74}, "gender": ["female"], "last_visit": {"not_within_days": 365}}


async def test_cohort_round_trip(
    client: httpx.AsyncClient, auth: dict[str, str], tenant_id: uuid.UUID
) -> None:
    created = await create_cohort(client, auth, CRITERIA, name="Breast screening recall")
    assert created["tenant_id"] == str(tenant_id)
    assert created["criteria"] == CRITERIA

    got = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert got.status_code == 200
    assert got.json() == created

    patched = await client.patch(
        f"{BASE}/{created['id']}", json={"description": "Women 50-74, not seen in a year"}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "Women 50-74, not seen in a year"
    assert patched.json()["name"] == "Breast screening recall"
    assert patched.json()["criteria"] == CRITERIA

    replaced = await client.patch(
        f"{BASE}/{created['id']}", json={"criteria": {"consent": "sms"}}, headers=auth
    )
    assert replaced.status_code == 200
    assert replaced.json()["criteria"] == {"consent": "sms"}

    listed = await client.get(BASE, headers=auth)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    assert listed.json()["total"] == 1

    deleted = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert deleted.status_code == 204
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).status_code == 404
    assert (await client.delete(f"{BASE}/{created['id']}", headers=auth)).status_code == 404


async def test_cohorts_list_by_name_in_pages(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for name in ("charlie", "Alpha", "bravo"):
        await create_cohort(client, auth, {}, name=name)
    first = await client.get(BASE, params={"page_size": 2}, headers=auth)
    assert [c["name"] for c in first.json()["items"]] == ["Alpha", "bravo"]
    assert first.json()["has_next"] is True
    second = await client.get(BASE, params={"page_size": 2, "page": 2}, headers=auth)
    assert [c["name"] for c in second.json()["items"]] == ["charlie"]


async def test_a_name_is_unique_in_the_tenant_ignoring_case(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await create_cohort(client, auth, {}, name="Diabetes recall")
    resp = await client.post(BASE, json={"name": "DIABETES RECALL", "criteria": {}}, headers=auth)
    assert resp.status_code == 409
    assert resp.json() == {"detail": "A cohort with this name already exists."}
    other = await create_cohort(client, auth, {}, name="Other")
    renamed = await client.patch(f"{BASE}/{other['id']}", json={"name": "diabetes recall"}, headers=auth)
    assert renamed.status_code == 409


async def test_another_tenant_may_use_the_same_name(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_tenant: TenantFactory,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    await create_cohort(client, auth, {}, name="Flu shots")
    await create_cohort(client, headers_for(await make_tenant(name="Other Clinic")), {}, name="Flu shots")


async def test_other_tenant_gets_404_for_cohort(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_tenant: TenantFactory,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    cohort = await create_cohort(client, auth, {})
    other = headers_for(await make_tenant(name="Other Clinic"), "admin")
    url = f"{BASE}/{cohort['id']}"
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.get(f"{url}/preview", headers=other)).status_code == 404
    assert (await client.patch(url, json={"name": "Mine now"}, headers=other)).status_code == 404
    assert (await client.delete(url, headers=other)).status_code == 404
    assert (await client.get(BASE, headers=other)).json()["total"] == 0
    assert (await client.get(url, headers=auth)).json()["name"] == cohort["name"]


async def test_viewers_read_but_do_not_write_cohorts(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    cohort = await create_cohort(client, auth, {})
    viewer = headers_for(tenant_id, "viewer")
    assert (await client.get(f"{BASE}/{cohort['id']}/preview", headers=viewer)).status_code == 200
    assert (await client.post(BASE, json={"name": "x", "criteria": {}}, headers=viewer)).status_code == 403
    assert (
        await client.patch(f"{BASE}/{cohort['id']}", json={"name": "y"}, headers=viewer)
    ).status_code == 403
    assert (await client.delete(f"{BASE}/{cohort['id']}", headers=viewer)).status_code == 403
    practitioner = headers_for(tenant_id, "practitioner")
    assert (await client.delete(f"{BASE}/{cohort['id']}", headers=practitioner)).status_code == 403


async def test_preview_of_an_empty_tenant_is_zero(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    cohort = await create_cohort(client, auth, {})
    resp = await client.get(f"{BASE}/{cohort['id']}/preview", headers=auth)
    assert resp.json() == {"count": 0, "sample": []}


async def test_preview_sample_is_the_first_twenty_by_name(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    ids = {}
    for i in range(23):
        last = f"Name{i:02d}"
        ids[last] = await clinic.patient(first_name="Zed" if i % 2 else "Amy", last_name=last)
    cohort = await create_cohort(client, auth, {})
    answer = (await client.get(f"{BASE}/{cohort['id']}/preview", headers=auth)).json()
    assert answer["count"] == 23
    assert [m["last_name"] for m in answer["sample"]] == [f"Name{i:02d}" for i in range(20)]
    assert answer["sample"][0] == {"id": str(ids["Name00"]), "first_name": "Amy", "last_name": "Name00"}
