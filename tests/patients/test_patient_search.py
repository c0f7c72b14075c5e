"""Listing and finding patients: the paginated list, the quick search and the advanced search."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.patients.support import BASE, CreatePatient


def ids(patients: list[dict]) -> list[str]:
    return [p["id"] for p in patients]


async def test_list_is_paginated_with_the_reference_envelope(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for i in range(3):
        await create_patient(last_name=f"Paged{i}")
    resp = await client.get(BASE, params={"page": 1, "page_size": 2}, headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"items", "total", "page", "page_size", "has_next", "has_previous"}
    assert (body["total"], body["page"], body["page_size"], body["has_next"], body["has_previous"]) == (
        3,
        1,
        2,
        True,
        False,
    )
    assert [p["last_name"] for p in body["items"]] == ["Paged0", "Paged1"]
    second = (await client.get(BASE, params={"page": 2, "page_size": 2}, headers=auth)).json()
    assert (len(second["items"]), second["has_next"], second["has_previous"]) == (1, False, True)


async def test_list_page_size_above_100_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(BASE, params={"page_size": 101}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "page_size"]


async def test_list_with_an_unknown_status_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(BASE, params={"status": "merged"}, headers=auth)).status_code == 422


async def test_list_filters_by_status(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    active = await create_patient(last_name="Here")
    gone = await create_patient(last_name="Gone")
    await client.delete(f"{BASE}/{gone['id']}", headers=auth)
    inactive = (await client.get(BASE, params={"status": "inactive"}, headers=auth)).json()
    assert ids(inactive["items"]) == [gone["id"]]
    only_active = (await client.get(BASE, params={"status": "active"}, headers=auth)).json()
    assert ids(only_active["items"]) == [active["id"]]


@pytest.mark.parametrize("search", ["maria lo", "Lopez", "5550142", "maria.lopez@example", "mrn-find-me"])
async def test_list_search_matches_name_phone_email_and_mrn(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient, search: str
) -> None:
    maria = await create_patient(
        first_name="Maria",
        last_name="Lopez",
        phone_primary="+1 415 555 0142",
        email_primary="maria.lopez@example.com",
        mrn="MRN-FIND-ME",
    )
    await create_patient(
        first_name="Ravi", last_name="Patel", phone_primary="+14155550199", email_primary="ravi@example.com"
    )
    resp = await client.get(BASE, params={"search": search}, headers=auth)
    assert ids(resp.json()["items"]) == [maria["id"]]


async def test_list_with_own_tenant_id_is_accepted_and_another_is_400(
    client: httpx.AsyncClient, auth: dict, tenant_id: uuid.UUID
) -> None:
    assert (await client.get(BASE, params={"tenant_id": str(tenant_id)}, headers=auth)).status_code == 200
    assert (await client.get(BASE, params={"tenant_id": str(uuid.uuid4())}, headers=auth)).status_code == 403


async def test_name_search_tolerates_typos(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    john = await create_patient(first_name="John", last_name="Smith")
    await create_patient(first_name="Maria", last_name="Lopez")
    resp = await client.get(f"{BASE}/search", params={"query": "Jon Smyth"}, headers=auth)
    assert resp.status_code == 200
    assert ids(resp.json()) == [john["id"]]


async def test_name_search_ranks_the_closest_name_first(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    johnson = await create_patient(first_name="John", last_name="Smithson")
    smith = await create_patient(first_name="John", last_name="Smith")
    resp = await client.get(f"{BASE}/search", params={"query": "john smith", "type": "name"}, headers=auth)
    assert ids(resp.json()) == [smith["id"], johnson["id"]]


async def test_name_search_finds_part_of_a_name(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    alexandra = await create_patient(first_name="Alexandra", last_name="Okonkwo")
    resp = await client.get(f"{BASE}/search", params={"query": "konk"}, headers=auth)
    assert ids(resp.json()) == [alexandra["id"]]


async def test_phone_typed_any_way_is_stored_in_e164_and_found_by_a_fragment(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient(phone_primary="(415) 555-2671")
    assert patient["phone_primary"] == "+14155552671"
    await create_patient(phone_primary="+14155550000")
    for query in ("5552671", "(415) 555-2671", "+1 415 555 2671"):
        resp = await client.get(f"{BASE}/search", params={"query": query, "type": "phone"}, headers=auth)
        assert ids(resp.json()) == [patient["id"]], query


async def test_phone_search_without_digits_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{BASE}/search", params={"query": "abc", "type": "phone"}, headers=auth)
    assert resp.status_code == 422


async def test_mrn_search_matches_exactly_or_by_prefix_in_any_case(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    a = await create_patient(mrn="CL-100")
    b = await create_patient(mrn="CL-1001")
    await create_patient(mrn="XY-100")
    exact_first = await client.get(f"{BASE}/search", params={"query": "cl-100", "type": "mrn"}, headers=auth)
    assert ids(exact_first.json()) == [a["id"], b["id"]]


async def test_email_search_is_case_insensitive(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient(email_primary="Kim.Lee@Clinic.org")
    await create_patient(email_primary="someone@else.org")
    resp = await client.get(f"{BASE}/search", params={"query": "KIM.LEE@", "type": "email"}, headers=auth)
    assert ids(resp.json()) == [patient["id"]]


async def test_search_respects_the_limit(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for _ in range(3):
        await create_patient(first_name="Sam", last_name="Same")
    resp = await client.get(f"{BASE}/search", params={"query": "sam same", "limit": 2}, headers=auth)
    assert len(resp.json()) == 2


@pytest.mark.parametrize(
    "params",
    [
        {"query": "a"},
        {},
        {"query": "ab", "limit": 51},
        {"query": "ab", "limit": 0},
        {"query": "ab", "type": "ssn"},
    ],
)
async def test_invalid_quick_search_is_422(client: httpx.AsyncClient, auth: dict, params: dict) -> None:
    assert (await client.get(f"{BASE}/search", params=params, headers=auth)).status_code == 422


async def test_advanced_search_combines_criteria(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    wanted = await create_patient(
        first_name="Grace", last_name="Hopper", date_of_birth="1906-12-09", gender="female", city="Arlington"
    )
    await create_patient(first_name="Grace", last_name="Hopper", date_of_birth="1950-01-01", gender="female")
    await create_patient(first_name="Grant", last_name="Hopkins", date_of_birth="1906-12-09", gender="male")
    body = {"first_name": "gra", "last_name": "HOP", "date_of_birth": "1906-12-09", "city": "arlington"}
    resp = await client.post(f"{BASE}/search", json=body, headers=auth)
    assert resp.status_code == 200
    result = resp.json()
    assert (result["total"], ids(result["items"])) == (1, [wanted["id"]])


async def test_advanced_search_by_phone_email_mrn_gender_and_status(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    wanted = await create_patient(
        phone_primary="+14155550123", email_primary="w@example.org", mrn="ADV-1", gender="other"
    )
    await create_patient(phone_primary="+14155550999", email_primary="x@example.org", mrn="ADV-2")
    body = {"phone": "555-0123", "email": "W@EXAMPLE", "mrn": "adv", "gender": "other", "status": "active"}
    result = (await client.post(f"{BASE}/search", json=body, headers=auth)).json()
    assert ids(result["items"]) == [wanted["id"]]


async def test_advanced_search_is_paginated(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for i in range(3):
        await create_patient(last_name=f"Page{i}")
    resp = await client.post(f"{BASE}/search", json={"page": 2, "page_size": 2}, headers=auth)
    body = resp.json()
    assert (body["total"], len(body["items"]), body["has_previous"], body["has_next"]) == (3, 1, True, False)


async def test_advanced_search_by_creation_window(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient()
    window = {"created_from": patient["created_at"], "created_to": patient["created_at"]}
    inside = (await client.post(f"{BASE}/search", json=window, headers=auth)).json()
    assert ids(inside["items"]) == [patient["id"]]
    later = (
        await client.post(f"{BASE}/search", json={"created_from": "2190-01-01T00:00:00Z"}, headers=auth)
    ).json()
    assert later["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"page_size": 101},
        {"page": 0},
        {"nickname": "Jo"},
        {"gender": "robot"},
        {"created_from": "2024-02-01T00:00:00Z", "created_to": "2024-01-01T00:00:00Z"},
        {"phone": "ab"},
    ],
)
async def test_invalid_advanced_search_is_422(client: httpx.AsyncClient, auth: dict, body: dict) -> None:
    assert (await client.post(f"{BASE}/search", json=body, headers=auth)).status_code == 422
