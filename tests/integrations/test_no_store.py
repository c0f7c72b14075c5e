"""What the EHR endpoints answer (patient data, and the client-credentials token) is never cached by a
browser or a proxy on the way: `Cache-Control: no-store`, as the coordinators' API answers."""

from __future__ import annotations

import httpx

from tests.integrations.conftest import Credentials, request_token


async def test_fhir_answers_and_token_answers_are_never_stored(
    client: httpx.AsyncClient, fhir_auth: dict[str, str], fhir_creds: Credentials, hl7_auth: dict[str, str]
) -> None:
    search = await client.get("/fhir/R4/Patient", headers=fhir_auth)
    token = await request_token(client, fhir_creds)
    hl7 = await client.post(
        "/hl7/v2", content=b"not HL7", headers={**hl7_auth, "Content-Type": "x-application/hl7-v2+er7"}
    )
    assert (search.status_code, token.status_code) == (200, 200)
    for answer in (search, token, hl7):
        assert answer.headers["cache-control"] == "no-store", answer.request.url
