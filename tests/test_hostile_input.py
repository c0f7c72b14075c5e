"""Hostile input gets a clear 4xx in `{"detail": ...}` and changes nothing: oversized bodies, NUL
characters, NaN/Infinity and deep nesting in JSON (even deep enough to exhaust a parser), pages past what an
OFFSET can hold (in a query or a body)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.problems import unprocessable

API = "/api/v1/prm"
PATIENT = {"first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-01-01"}


async def patient_count(client: httpx.AsyncClient, auth: dict) -> int:
    return (await client.get(f"{API}/patients", headers=auth)).json()["total"]


async def test_a_body_past_the_limit_is_413_with_or_without_a_content_length(
    client: httpx.AsyncClient, auth: dict, settings
) -> None:
    big = json.dumps({**PATIENT, "meta_data": {"note": "x" * (settings.max_body_bytes + 1)}}).encode()
    resp = await client.post(
        f"{API}/patients", content=big, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413 and "larger than" in resp.json()["detail"]

    async def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    resp = await client.post(
        f"{API}/patients", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    assert await patient_count(client, auth) == 0


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**PATIENT, "first_name": "Ada\u0000"}),
        json.dumps({**PATIENT, "meta_data": {"k\u0000": 1}}),
    ],
    ids=["in a value", "in a key"],
)
async def test_a_nul_character_in_a_body_is_422(client: httpx.AsyncClient, auth: dict, body: str) -> None:
    resp = await client.post(
        f"{API}/patients", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and unprocessable(resp) == "NUL characters are not accepted in a request."
    assert await patient_count(client, auth) == 0


async def test_a_nul_character_in_the_query_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{API}/patients?search=Ada%00", headers=auth)
    assert resp.status_code == 422 and "NUL" in unprocessable(resp)


async def test_an_escaped_backslash_before_u0000_is_just_text(client: httpx.AsyncClient, auth: dict) -> None:
    body = json.dumps({**PATIENT, "meta_data": {"note": "C:\\u0000 is a path, not a NUL"}})
    resp = await client.post(
        f"{API}/patients", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json_numbers(
    client: httpx.AsyncClient, auth: dict, constant: str
) -> None:
    body = json.dumps({**PATIENT, "meta_data": {"score": 1}}).replace("1}", f"{constant}}}")
    resp = await client.post(
        f"{API}/patients", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and "not a JSON number" in unprocessable(resp)
    assert await patient_count(client, auth) == 0


async def test_json_nested_past_the_limit_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    nested: dict = {}
    for _ in range(200):
        nested = {"n": nested}
    body = json.dumps({**PATIENT, "meta_data": nested})
    resp = await client.post(
        f"{API}/patients", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and "nests deeper" in unprocessable(resp)


async def test_a_page_past_what_an_offset_holds_is_422_not_500(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(f"{API}/patients", params={"page": 10**19}, headers=auth)
    assert resp.status_code == 422
    assert (await client.get(f"{API}/patients", params={"page": 1_000_000}, headers=auth)).status_code == 200


async def test_json_nested_thousands_deep_is_422_not_500(client: httpx.AsyncClient, auth: dict) -> None:
    # Deep enough to exhaust Python's JSON parser (a RecursionError), not only past the guard's limit.
    nested = '{"n": ' * 3000 + "{}" + "}" * 3000
    body = json.dumps(PATIENT)[:-1] + f', "meta_data": {nested}}}'
    resp = await client.post(
        f"{API}/patients", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and "nests deeper" in unprocessable(resp)
    assert await patient_count(client, auth) == 0


async def test_an_advanced_search_page_past_what_an_offset_holds_is_422_not_500(
    client: httpx.AsyncClient, auth: dict
) -> None:
    search = f"{API}/patients/search"
    assert (await client.post(search, json={"page": 2**63 - 1}, headers=auth)).status_code == 422
    assert (await client.post(search, json={"page": 1_000_000}, headers=auth)).status_code == 200


async def test_answers_with_patient_data_are_never_cached_and_never_sniffed(
    client: httpx.AsyncClient, auth: dict
) -> None:
    listed = await client.get(f"{API}/patients", headers=auth)
    refused = await client.get(f"{API}/patients")
    health = await client.get("/health")
    assert listed.headers["Cache-Control"] == "no-store" and refused.headers["Cache-Control"] == "no-store"
    assert all(r.headers["X-Content-Type-Options"] == "nosniff" for r in (listed, refused, health))


def test_the_development_secret_is_refused_off_loopback() -> None:
    from core.settings import Settings

    everywhere = "0.0.0.0"  # noqa: S104 - the point of the test
    with pytest.raises(ValueError, match="non-loopback"):
        Settings(api_host=everywhere)
    Settings(api_host=everywhere, jwt_secret="a-real-secret-" + "x" * 32)
    Settings(api_host="127.0.0.1")


async def test_dates_at_the_edge_of_the_calendar_are_422_not_500(
    client: httpx.AsyncClient, auth: dict
) -> None:
    custom = {"time_period": "CUSTOM", "start_date": "9999-12-30", "end_date": "9999-12-31"}
    assert (await client.get(f"{API}/analytics/dashboard", params=custom, headers=auth)).status_code == 422
    far = {"start_date": "0001-01-01", "end_date": "9999-12-31"}
    assert (await client.get(f"{API}/appointments", params=far, headers=auth)).status_code == 422
    late = {**PATIENT, "date_of_birth": "1990-01-01"}
    created = await client.post(f"{API}/patients", json=late, headers=auth)
    body = {
        "patient_id": created.json()["id"],
        "channel": "sms",
        "message": "Hi",
        "scheduled_for": "9999-12-31T23:00:00-05:00",
    }
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    assert resp.status_code == 422  # its UTC day is in the year 10000: never stored, so never unreadable
    assert "scheduled_for must fall between" in json.dumps(resp.json())


async def test_free_form_json_past_16_kib_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    body = {**PATIENT, "meta_data": {"note": "x" * 20_000}}
    resp = await client.post(f"{API}/patients", json=body, headers=auth)
    assert resp.status_code == 422 and "16384 bytes" in json.dumps(resp.json())
    assert await patient_count(client, auth) == 0


async def test_a_json_body_that_is_not_utf8_text_is_422_not_400(
    client: httpx.AsyncClient, auth: dict
) -> None:
    resp = await client.post(
        f"{API}/patients/search",
        content=b'{"first_name": "\xff"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and unprocessable(resp) == "The JSON body is not UTF-8 text."
