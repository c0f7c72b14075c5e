"""FHIR intake lenient where FHIR practice is: an unusable optional element is left out with an
informational issue naming it, not a refusal of the bundle. And hostile nesting refused before parsing."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integrations.fhir_support import FHIR, entry, patient, post_bundle, snapshot


def _language(*codes: str) -> dict[str, object]:
    return {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": c} for c in codes]}}


@pytest.mark.parametrize(
    ("communication", "kept", "dropped"),
    [
        ([_language("SPANISH")], None, [0]),  # a name, not a code, in first position
        ([_language("SPANISH"), _language("es-MX")], "es-MX", [0]),
        ([_language("fr"), _language("Klingon!")], "fr", [1]),  # in any position
    ],
)
async def test_a_language_that_is_no_bcp47_tag_is_dropped_and_named(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    communication: list[dict[str, object]],
    kept: str | None,
    dropped: list[int],
) -> None:
    mrn = uuid.uuid4().hex[:8]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry({**patient(mrn), "communication": communication})],
    }

    response = await post_bundle(client, fhir_auth, bundle)

    assert response.status_code == 200, response.text
    result = response.json()["entry"][0]["response"]
    assert result["status"] == "201 Created"
    issues = result["outcome"]["issue"]
    assert [i["expression"] for i in issues] == [[f"Patient.communication[{n}].language"] for n in dropped]
    assert all(i["severity"] == "information" and i["code"] == "informational" for i in issues)
    assert "SPANISH" not in json.dumps(issues) and "Klingon" not in json.dumps(issues)  # no values told
    stored = (await client.get(f"{FHIR}/{result['location']}", headers=fhir_auth)).json()
    languages = [c["language"]["coding"][0]["code"] for c in stored.get("communication", [])]
    assert languages == ([kept] if kept else [])


async def test_a_resource_nested_thousands_deep_is_refused_before_parsing_and_stores_nothing(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await snapshot(system_sessionmaker, tenant_id)
    nested = '{"extension": [' * 3000 + "{}" + "]}" * 3000
    resource = json.dumps(patient("DEEP-1"))[:-1] + f', "_gender": {nested}}}'
    bundle = '{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": ' + resource + "}]}"
    headers = {**fhir_auth, "Content-Type": "application/fhir+json"}

    for path, body in ((FHIR, bundle), (f"{FHIR}/Patient", resource)):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "nests deeper" in response.json()["issue"][0]["diagnostics"]
    assert await snapshot(system_sessionmaker, tenant_id) == before


async def test_a_single_create_tells_what_it_left_out_when_the_client_prefers_an_outcome(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    headers = {**fhir_auth, "Content-Type": "application/fhir+json"}
    resource = {**patient("LEN-1"), "communication": [_language("SPANISH")]}

    outcome = await client.post(
        f"{FHIR}/Patient", json=resource, headers={**headers, "Prefer": "return=OperationOutcome"}
    )
    minimal = await client.post(
        f"{FHIR}/Patient",
        json={**resource, "identifier": [{"system": "urn:x", "value": "LEN-2"}]},
        headers={**headers, "Prefer": "return=minimal"},
    )

    assert outcome.status_code == 201, outcome.text
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["expression"] == ["Patient.communication[0].language"]
    assert outcome.headers["location"].endswith("/_history/1")
    assert minimal.status_code in (200, 201)  # the duplicate matcher may link it to LEN-1's patient
    assert minimal.content == b""
    assert minimal.headers["etag"].startswith('W/"')
