"""Bad criteria and hostile bodies are a 422 (or 413) naming the field, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.cohorts.support import BASE, Clinic, create_cohort
from tests.problems import unprocessable
from tests.tenants import TenantFactory

CRITERIA = ("body", "criteria")
BAD_CRITERIA: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
    ({"colour": "blue"}, ("colour",)),
    ({"age": {"min": 80, "max": 20}}, ("age",)),
    ({"age": {}}, ("age",)),
    ({"age": {"min": -1}}, ("age", "min")),
    ({"age": {"min": 2**70}}, ("age", "min")),
    ({"age": {"min": 20, "eldest": 30}}, ("age", "eldest")),
    ({"gender": []}, ("gender",)),
    ({"gender": ["robot"]}, ("gender", 0)),
    ({"languages": ["not a language"]}, ("languages", 0)),
    ({"languages": []}, ("languages",)),
    ({"status": "asleep"}, ("status",)),
    ({"last_visit": {"not_within_days": -5}}, ("last_visit", "not_within_days")),
    ({"last_visit": {"not_within_days": 0}}, ("last_visit", "not_within_days")),
    ({"last_visit": {"not_within_days": 2**64}}, ("last_visit", "not_within_days")),
    ({"last_visit": {"not_within_days": 30, "never": True}}, ("last_visit",)),
    ({"last_visit": {}}, ("last_visit",)),
    ({"last_visit": {"never": False}}, ("last_visit", "never")),
    ({"has_upcoming_appointment": "perhaps"}, ("has_upcoming_appointment",)),
    ({"seen_by": {"within_days": 30}}, ("seen_by",)),
    ({"seen_by": {"practitioner_ids": []}}, ("seen_by", "practitioner_ids")),
    ({"seen_by": {"location_ids": ["not-a-uuid"]}}, ("seen_by", "location_ids", 0)),
    ({"seen_by": {"specialities": ["Cardiology"], "within_days": -1}}, ("seen_by", "within_days")),
    ({"on_journey": {"state": "sometimes"}}, ("on_journey", "state")),
    ({"not_on_journey": {"journey_ids": []}}, ("not_on_journey", "journey_ids")),
    ({"consent": "pigeon"}, ("consent",)),
    ({"consent": ["sms"]}, ("consent",)),
]


def _locs(resp: httpx.Response) -> list[tuple[Any, ...]]:
    unprocessable(resp)
    return [tuple(item["loc"]) for item in resp.json()["detail"]]


@pytest.mark.parametrize(("criteria", "field"), BAD_CRITERIA, ids=[str(c) for c, _ in BAD_CRITERIA])
async def test_bad_criteria_are_422_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], criteria: dict[str, Any], field: tuple[Any, ...]
) -> None:
    resp = await client.post(BASE, json={"name": "Bad", "criteria": criteria}, headers=auth)
    assert (*CRITERIA, *field) in _locs(resp)


async def test_bad_criteria_in_a_patch_are_422_and_change_nothing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cohort = await create_cohort(client, auth, {"consent": "sms"})
    url = f"{BASE}/{cohort['id']}"
    resp = await client.patch(url, json={"criteria": {"age": {"min": 9, "max": 3}}}, headers=auth)
    assert (*CRITERIA, "age") in _locs(resp)
    for field in ("name", "criteria"):
        assert ("body", field) in _locs(await client.patch(url, json={field: None}, headers=auth))
    assert (await client.get(url, headers=auth)).json() == cohort


async def test_criteria_are_required_on_create(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert ("body", "criteria") in _locs(await client.post(BASE, json={"name": "No criteria"}, headers=auth))


async def test_unknown_practitioner_location_or_journey_is_422_naming_it(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    ada, downtown, recall = await clinic.practitioner(), await clinic.location(), await clinic.journey()
    unknown = str(uuid.uuid4())
    cases = [
        ({"seen_by": {"practitioner_ids": [str(ada), unknown]}}, ("seen_by", "practitioner_ids", 1)),
        ({"seen_by": {"location_ids": [unknown]}}, ("seen_by", "location_ids", 0)),
        ({"on_journey": {"journey_ids": [unknown]}}, ("on_journey", "journey_ids", 0)),
        ({"not_on_journey": {"journey_ids": [str(recall), unknown]}}, ("not_on_journey", "journey_ids", 1)),
    ]
    for criteria, field in cases:
        resp = await client.post(BASE, json={"name": "Ghosts", "criteria": criteria}, headers=auth)
        assert _locs(resp) == [(*CRITERIA, *field)]
        assert unknown in resp.json()["detail"][0]["msg"]
    known = {
        "seen_by": {"practitioner_ids": [str(ada)], "location_ids": [str(downtown)]},
        "on_journey": {"journey_ids": [str(recall)]},
    }
    await create_cohort(client, auth, known)


async def test_another_tenants_records_are_422_in_criteria(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_tenant: TenantFactory,
    system_sessionmaker: Any,
) -> None:
    other = Clinic(system_sessionmaker, await make_tenant(name="Other Clinic"))
    theirs = {
        "practitioner": str(await other.practitioner()),
        "location": str(await other.location()),
        "journey": str(await other.journey()),
    }
    cohort = await create_cohort(client, auth, {})
    cases = [
        ({"seen_by": {"practitioner_ids": [theirs["practitioner"]]}}, ("seen_by", "practitioner_ids", 0)),
        ({"seen_by": {"location_ids": [theirs["location"]]}}, ("seen_by", "location_ids", 0)),
        ({"not_on_journey": {"journey_ids": [theirs["journey"]]}}, ("not_on_journey", "journey_ids", 0)),
    ]
    for criteria, field in cases:
        created = await client.post(BASE, json={"name": "Theirs", "criteria": criteria}, headers=auth)
        assert _locs(created) == [(*CRITERIA, *field)]
        patched = await client.patch(f"{BASE}/{cohort['id']}", json={"criteria": criteria}, headers=auth)
        assert _locs(patched) == [(*CRITERIA, *field)]


async def test_hostile_bodies_are_refused_not_500(
    client: httpx.AsyncClient, auth: dict[str, str], headers_for: Callable[..., dict[str, str]]
) -> None:
    nul = await client.post(BASE, json={"name": "Null\u0000byte", "criteria": {}}, headers=auth)
    assert 400 <= nul.status_code < 500
    long_name = await client.post(BASE, json={"name": "x" * 201, "criteria": {}}, headers=auth)
    assert ("body", "name") in _locs(long_name)
    huge = await client.post(
        BASE,
        content=b'{"name": "big", "criteria": {}, "description": "' + b"x" * 10_000_000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    not_json = await client.post(BASE, content=b"{", headers={**auth, "Content-Type": "application/json"})
    assert not_json.status_code == 422
    assert (await client.get(f"{BASE}/not-a-uuid", headers=auth)).status_code == 422
    assert (await client.get(f"{BASE}/{uuid.uuid4()}/preview", headers=auth)).status_code == 404
    big_page = await client.get(BASE, params={"page": 2**63}, headers=auth)
    assert big_page.status_code == 422
