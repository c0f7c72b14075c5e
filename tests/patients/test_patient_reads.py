"""The patient list's and quick search's reads (`domain.patients.reads`, `domain.patients.name_search`):
psycopg statements that filter by tenant themselves."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

from domain.patients import name_search
from domain.patients.reads import EMAIL, LISTS, MRN, PHONE_PART, PHONE_PART_OR_NUMBER
from tests.patients.support import BASE, CreatePatient


def test_every_shape_of_the_list_filters_by_the_callers_tenant() -> None:
    for page, count in LISTS.values():
        for read in (page, count):
            assert re.search(r"WHERE patients\.tenant_id = %\(tenant_id\)s", read.sql), read.sql
    assert len(LISTS) == 6  # with or without a status; no search, a search, a phone-like search


def test_every_quick_search_statement_filters_each_table_it_reads_by_the_callers_tenant() -> None:
    reads = [PHONE_PART, PHONE_PART_OR_NUMBER, MRN, EMAIL]
    for words in range(1, name_search.MAX_WORDS + 1):
        query = tuple(f"name{n}" for n in range(words))
        reads += [name_search._exact_or_prefix(query)[0], name_search._fuzzy(query)[0]]
    for read in reads:
        for table in ("patients", "patient_name_terms"):
            tables = len(re.findall(rf"FROM {table}\b", read.sql))
            filters = len(re.findall(rf"WHERE {table}\.tenant_id = %\(tenant_id\)s", read.sql))
            assert tables == filters, read.sql
    assert "patient_name_terms" in name_search._fuzzy(("jon", "smyth"))[0].sql


async def test_another_tenants_list_and_search_leave_out_our_patients(
    client: httpx.AsyncClient,
    create_patient: CreatePatient,
    other_tenant_headers: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    mine = await create_patient(first_name="Quentin", last_name="Oddname", phone_primary="+14155550199")
    theirs = await other_tenant_headers()
    for params in (
        {},
        {"search": "Oddname"},
        {"search": "0199"},
        {"search": mine["mrn"]},
        {"status": "active"},
    ):
        resp = await client.get(BASE, params=params, headers=theirs)
        assert resp.status_code == 200, resp.text
        assert resp.json()["total"] == 0 and resp.json()["items"] == [], params


async def test_a_search_takes_like_wildcards_literally(
    client: httpx.AsyncClient, auth: dict, create_patient: CreatePatient
) -> None:
    await create_patient(first_name="Ann", last_name="Under_Score", email_primary="ann_u@example.com")
    await create_patient(first_name="Ann", last_name="UnderXScore", email_primary="annxu@example.com")
    found = (await client.get(BASE, params={"search": "under_s"}, headers=auth)).json()
    assert [p["last_name"] for p in found["items"]] == ["Under_Score"]
    assert (await client.get(BASE, params={"search": "%"}, headers=auth)).json()["total"] == 0
