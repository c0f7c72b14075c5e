"""FHIR search `_sort` and the string modifiers `:exact` / `:contains`, as an EHR calls them with its
integration token: every answer validates with `fhir.resources`, unknown modifiers and sort keys are 400
OperationOutcomes naming them (strict, this server's default), and `Prefer: handling=lenient` ignores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.integrations.fhir_support import API, FHIR, fhir_get, ids, register, valid

LENIENT = {"Prefer": "handling=lenient"}


@pytest.fixture
async def patients(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    """Four patients, registered in this order: their ids by a short name."""
    made = {}
    for key, first, last, born in (
        ("smith", "John", "Smith", "1980-04-12"),
        ("smithson", "Anna", "Smithson", "1992-11-30"),
        ("goldsmith", "Zoe", "Goldsmith", "1975-01-02"),
        ("lower", "Mia", "smith", "2001-06-15"),
    ):
        made[key] = (await register(client, auth, first_name=first, last_name=last, date_of_birth=born))["id"]
    return made


async def search(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    """The ids a Patient search answers, in order."""
    response = await fhir_get(client, "Patient", headers, **params)
    assert response.status_code == 200, response.text
    return ids(response.json())


async def test_patients_sort_by_birthdate_family_and_name_either_way(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    p = patients

    assert await search(client, fhir_auth, _sort="birthdate") == [
        p["goldsmith"],
        p["smith"],
        p["smithson"],
        p["lower"],
    ]
    assert await search(client, fhir_auth, _sort="-birthdate") == [
        p["lower"],
        p["smithson"],
        p["smith"],
        p["goldsmith"],
    ]
    # family: in any case (Smith and smith together), then given names break the tie.
    assert await search(client, fhir_auth, _sort="family,given") == [
        p["goldsmith"],
        p["smith"],
        p["lower"],
        p["smithson"],
    ]
    assert await search(client, fhir_auth, _sort="-family,-given") == [
        p["smithson"],
        p["lower"],
        p["smith"],
        p["goldsmith"],
    ]
    assert await search(client, fhir_auth, _sort="name") == await search(
        client, fhir_auth, _sort="family,given"
    )


async def test_sort_by_last_updated_either_way(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    p = patients
    changed = await client.patch(f"{API}/patients/{p['smith']}", json={"first_name": "Jon"}, headers=auth)
    assert changed.status_code == 200, changed.text

    oldest_first = await search(client, fhir_auth, _sort="_lastUpdated")
    newest_first = await search(client, fhir_auth, _sort="-_lastUpdated")

    assert oldest_first == [p["smithson"], p["goldsmith"], p["lower"], p["smith"]]
    assert newest_first == oldest_first[::-1]
    assert await search(client, fhir_auth) == oldest_first  # the default order


async def test_sorted_pages_follow_one_another_through_the_next_links(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    bundle = (await fhir_get(client, "Patient", fhir_auth, _sort="-birthdate", _count=3)).json()
    [following] = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    parts = urlsplit(following)
    rest = valid((await client.get(f"{parts.path}?{parts.query}", headers=fhir_auth)).json())

    assert ("_sort", "-birthdate") in parse_qsl(parts.query)
    assert ids(bundle) + ids(rest) == await search(client, fhir_auth, _sort="-birthdate")


async def test_name_exact_matches_a_whole_name_part_as_written(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    p = patients

    assert await search(client, fhir_auth, **{"name:exact": "Smith"}) == [p["smith"]]
    assert await search(client, fhir_auth, **{"name:exact": "smith"}) == [p["lower"]]
    assert await search(client, fhir_auth, **{"name:exact": "Smit"}) == []
    assert await search(client, fhir_auth, **{"family:exact": "Smithson"}) == [p["smithson"]]
    assert await search(client, fhir_auth, **{"given:exact": "Zoe"}) == [p["goldsmith"]]
    assert await search(client, fhir_auth, name="smith") == [p["smith"], p["smithson"], p["lower"]]


async def test_name_contains_matches_anywhere_in_any_case(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    p = patients

    found = await search(client, fhir_auth, **{"name:contains": "MITH"})
    assert set(found) == {p["smith"], p["smithson"], p["goldsmith"], p["lower"]}
    assert await search(client, fhir_auth, **{"family:contains": "dsm"}) == [p["goldsmith"]]
    assert await search(client, fhir_auth, **{"given:contains": "nn"}) == [p["smithson"]]
    assert await search(client, fhir_auth, **{"name:contains": "100%"}) == []  # wildcards are literal


@pytest.mark.parametrize(
    ("resource_type", "params", "named"),
    [
        ("Patient", {"name:fuzzy": "x"}, "name"),
        ("Patient", {"birthdate:exact": "1980"}, "birthdate"),
        ("Patient", {"_sort": "colour"}, "colour"),
        ("Patient", {"_sort": "-birthdate,height"}, "height"),
        ("Appointment", {"_sort": "birthdate"}, "birthdate"),
        ("Practitioner", {"family:missing": "true"}, "family"),
    ],
)
async def test_an_unknown_modifier_or_sort_key_is_a_400_naming_it(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    resource_type: str,
    params: dict[str, str],
    named: str,
) -> None:
    response = await fhir_get(client, resource_type, fhir_auth, **params)

    assert response.status_code == 400
    [issue] = response.json()["issue"]
    assert issue["code"] == "invalid"
    assert named in issue["diagnostics"]


async def test_sort_may_be_given_once(client: httpx.AsyncClient, fhir_auth: dict[str, str]) -> None:
    response = await client.get(
        f"{FHIR}/Patient", params=[("_sort", "family"), ("_sort", "given")], headers=fhir_auth
    )

    assert response.status_code == 400
    assert "_sort" in valid(response.json())["issue"][0]["diagnostics"]


async def test_lenient_handling_ignores_what_it_does_not_know_and_links_only_what_it_applied(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], patients: dict[str, str]
) -> None:
    p = patients
    params = {"colour": "blue", "name:fuzzy": "x", "_sort": "height,-birthdate", "family": "smith"}

    response = await fhir_get(client, "Patient", {**fhir_auth, **LENIENT}, **params)

    assert response.status_code == 200, response.text
    bundle = response.json()
    assert ids(bundle) == [p["lower"], p["smithson"], p["smith"]]
    [self_link] = [link["url"] for link in bundle["link"] if link["relation"] == "self"]
    applied = dict(parse_qsl(urlsplit(self_link).query))
    assert applied == {"family": "smith", "_sort": "-birthdate", "_count": "20"}
    bad_value = await fhir_get(client, "Patient", {**fhir_auth, **LENIENT}, birthdate="yesterday")
    assert bad_value.status_code == 400  # lenient about names, never about values


async def test_practitioners_and_appointments_sort_too(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    patient = await register(client, auth)
    practitioners = []
    for first, last in (("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper")):
        made = await client.post(
            f"{API}/practitioners", json={"first_name": first, "last_name": last}, headers=auth
        )
        assert made.status_code == 201, made.text
        practitioners.append(made.json()["id"])
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    appointments = []
    for days, practitioner in zip((2, 0, 1), practitioners, strict=True):
        at = start + timedelta(days=days)
        body = {
            "patient_id": patient["id"],
            "practitioner_id": practitioner,
            "start_time": at.isoformat(),
            "end_time": (at + timedelta(minutes=30)).isoformat(),
        }
        booked = await client.post(f"{API}/appointments", json=body, headers=auth)
        assert booked.status_code == 201, booked.text
        appointments.append(booked.json()["id"])

    by_family = ids((await fhir_get(client, "Practitioner", fhir_auth, _sort="family")).json())
    by_date = ids((await fhir_get(client, "Appointment", fhir_auth, _sort="-date")).json())

    assert by_family == [practitioners[2], practitioners[0], practitioners[1]]  # Hopper, Lovelace, Turing
    assert by_date == [appointments[0], appointments[2], appointments[1]]


async def test_the_capability_statement_declares_sort_keys_and_string_modifiers(
    client: httpx.AsyncClient,
) -> None:
    body = (await fhir_get(client, "metadata", {})).json()

    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    patient = {p["name"]: p for p in resources["Patient"]["searchParam"]}
    assert patient["family"]["type"] == patient["given"]["type"] == patient["name"]["type"] == "string"
    assert ":exact" in patient["name"]["documentation"] and ":contains" in patient["name"]["documentation"]
    assert patient["_sort"]["type"] == "special"
    for key in ("_lastUpdated", "birthdate", "family", "name"):
        assert key in patient["_sort"]["documentation"]
    appointment = {p["name"]: p for p in resources["Appointment"]["searchParam"]}
    assert "date" in appointment["_sort"]["documentation"]
    assert "birthdate" not in appointment["_sort"]["documentation"]
