"""Name search (`GET /patients/search`, type name): the order a coordinator expects, and tenancy."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.patients.support import BASE, CreatePatient, patient_body
from tests.tenants import TenantFactory


async def names(client: httpx.AsyncClient, auth: dict, query: str, **params: object) -> list[str]:
    resp = await client.get(f"{BASE}/search", params={"query": query, **params}, headers=auth)
    assert resp.status_code == 200, resp.text
    return [f"{p['first_name']} {p['last_name']}" for p in resp.json()]


async def test_exact_names_come_before_prefixes_and_prefixes_before_typos(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    # Created in the reverse order of the expected result, so insertion order cannot explain it.
    for first, last in [("Anna", "Burg"), ("Carl", "Bergman"), ("Anna", "Bergman"), ("Zoe", "Berg")]:
        await create_patient(first_name=first, last_name=last)
    assert await names(client, auth, "berg") == ["Zoe Berg", "Anna Bergman", "Carl Bergman", "Anna Burg"]


async def test_full_name_exact_then_prefix_then_typo(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for first, last in [("Jon", "Smyth"), ("Johnny", "Smithers"), ("John", "Smith"), ("Mary", "Smith")]:
        await create_patient(first_name=first, last_name=last)
    assert await names(client, auth, "john smith") == ["John Smith", "Johnny Smithers", "Jon Smyth"]
    # Last name first, as coordinators often type it.
    assert (await names(client, auth, "Smith John"))[0] == "John Smith"


async def test_first_name_search_lists_every_namesake_by_last_name(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for last in ("Young", "Adams", "Miller"):
        await create_patient(first_name="Grace", last_name=last)
    await create_patient(first_name="Gracelyn", last_name="Abbott")
    assert await names(client, auth, "Grace") == [
        "Grace Adams",
        "Grace Miller",
        "Grace Young",
        "Gracelyn Abbott",
    ]


async def test_a_short_prefix_finds_first_and_last_names_but_no_typos(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    for first, last in [("Kim", "Okafor"), ("Olga", "Petrova"), ("Peter", "Olsen"), ("Al", "Ng")]:
        await create_patient(first_name=first, last_name=last)
    assert await names(client, auth, "ol") == ["Olga Petrova", "Peter Olsen"]


async def test_accents_and_case_do_not_matter(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    await create_patient(first_name="José", last_name="García Núñez")
    await create_patient(first_name="Jürgen", last_name="Müller")
    assert await names(client, auth, "JOSE garcia nunez") == ["José García Núñez"]
    assert await names(client, auth, "muller") == ["Jürgen Müller"]
    assert await names(client, auth, "Müll") == ["Jürgen Müller"]


async def test_a_renamed_patient_is_found_by_a_typo_of_the_new_name(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    patient = await create_patient(first_name="Ada", last_name="Byron")
    resp = await client.patch(f"{BASE}/{patient['id']}", json={"last_name": "Lovelace"}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert await names(client, auth, "lovelase") == ["Ada Lovelace"]


@pytest.mark.parametrize(
    "query", ["Quentin Zabriskie", "zabriskie", "zab", "zabriskei", "qentin zabriskie", "quentin zabrisky"]
)
async def test_name_search_never_returns_another_tenants_patients(
    client: httpx.AsyncClient,
    auth: dict,
    create_patient: CreatePatient,
    make_tenant: TenantFactory,
    headers_for: Callable[..., dict[str, str]],
    query: str,
) -> None:
    other = await make_tenant("Other Clinic")
    resp = await client.post(
        BASE, json=patient_body(first_name="Quentin", last_name="Zabriskie"), headers=headers_for(other)
    )
    assert resp.status_code == 201, resp.text
    await create_patient(first_name="Quentin", last_name="Adams")
    mine = await names(client, auth, query)
    assert "Quentin Zabriskie" not in mine
    assert await names(client, headers_for(other), query) == ["Quentin Zabriskie"]


async def test_typed_wildcards_are_plain_characters(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    await create_patient(first_name="Anna", last_name="Berg")
    assert await names(client, auth, "b%") == []
    assert await names(client, auth, "%%") == []


async def test_a_word_one_edit_away_is_a_typo_and_a_long_word_two_edits_away_too(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    await create_patient(first_name="Quentin", last_name="Zabriskie")
    await create_patient(first_name="Eva", last_name="Kahn")
    for typo in ("zabriskei", "zabrisie", "zabbriskie", "zabrisky", "quentin zabriskey"):
        assert await names(client, auth, typo) == ["Quentin Zabriskie"], typo
    assert await names(client, auth, "kahm") == ["Eva Kahn"]
    assert await names(client, auth, "kxhm") == []  # two edits away from a short name is another name
