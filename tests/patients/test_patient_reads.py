"""The patient list's reads (`domain.patients.reads`): psycopg statements that filter by tenant themselves."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

from domain.patients.reads import LISTS
from tests.patients.support import BASE, CreatePatient


def test_every_shape_of_the_list_filters_by_the_callers_tenant() -> None:
    for page, count in LISTS.values():
        for read in (page, count):
            assert re.search(r"WHERE patients\.tenant_id = %\(tenant_id\)s", read.sql), read.sql
    assert len(LISTS) == 6  # with or without a status; no search, a search, a phone-like search


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
