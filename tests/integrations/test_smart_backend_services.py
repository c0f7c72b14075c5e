"""SMART Backend Services: a client registered with a JWK Set trades a signed assertion (`private_key_jwt`)
for a token, and SMART scopes narrow what the token may do on the FHIR API."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import ECAlgorithm
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.client_credentials import Scope
from core.database import mark_system
from domain.integrations.models import IntegrationClientAssertion
from tests.integrations.fhir_support import FHIR, fhir_get
from tests.integrations.jwks_support import (
    TOKEN_URL,
    JwksServer,
    assertion,
    key_pair,
    token_form,
)
from tests.stack.cli_support import create_tenant, prm

API = "/api/v1/prm"


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_a_private_key_jwt_client_trades_its_assertion_for_a_token_and_reads_fhir(
    client: httpx.AsyncClient, make_keyed_client: Any, alg: str
) -> None:
    key = key_pair(alg)
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})

    response = await client.post("/oauth/token", data=token_form(assertion(client_id, key)))

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "fhir"
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    found = await fhir_get(client, "Patient", auth)
    assert found.status_code == 200
    assert found.json()["type"] == "searchset"


async def test_a_replayed_assertion_is_refused(client: httpx.AsyncClient, make_keyed_client: Any) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})
    signed = assertion(client_id, key)

    first = await client.post("/oauth/token", data=token_form(signed))
    again = await client.post("/oauth/token", data=token_form(signed))
    same_jti = await client.post(
        "/oauth/token",
        data=token_form(
            assertion(client_id, key, jti=jwt.decode(signed, options={"verify_signature": False})["jti"])
        ),
    )

    assert first.status_code == 200, first.text
    for replay in (again, same_jti):
        assert replay.status_code == 401
        assert replay.json()["error"] == "invalid_client"
        assert "used already" in replay.json()["error_description"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_aud", "aud must be the token URL"),
        ("too_long", "at most 300 seconds ahead"),
        ("unknown_kid", "No key"),
        ("hs256", "RS384 or ES384"),
        ("other_key", "signature or claims"),
        ("expired", "expired"),
    ],
)
async def test_a_defective_assertion_is_invalid_client_with_its_reason(
    client: httpx.AsyncClient, make_keyed_client: Any, case: str, reason: str
) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})
    impostor = key_pair(kid=key.kid)  # same kid, another private key
    now = datetime.now(UTC)
    signed = {
        "wrong_aud": lambda: assertion(client_id, key, aud="https://elsewhere.example/oauth/token"),
        "too_long": lambda: assertion(client_id, key, lifetime=timedelta(minutes=10)),
        "unknown_kid": lambda: assertion(client_id, key, kid="not-registered"),
        "hs256": lambda: jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": TOKEN_URL,
                "exp": now + timedelta(minutes=4),
                "jti": "x",
            },
            "a-shared-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
            headers={"kid": key.kid},
        ),
        "other_key": lambda: assertion(client_id, impostor),
        "expired": lambda: assertion(client_id, key, lifetime=timedelta(minutes=-5)),
    }[case]()

    response = await client.post("/oauth/token", data=token_form(signed))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert reason in response.json()["error_description"]


async def test_a_secret_client_cannot_authenticate_with_an_assertion(
    client: httpx.AsyncClient, fhir_creds: Any
) -> None:
    key = key_pair()

    response = await client.post("/oauth/token", data=token_form(assertion(fhir_creds.client_id, key)))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_smart_scopes_narrow_what_the_token_may_do(
    client: httpx.AsyncClient, make_keyed_client: Any
) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})

    response = await client.post(
        "/oauth/token",
        data=token_form(assertion(client_id, key), scope="system/Patient.read system/Appointment.s"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Appointment.s system/Patient.read"
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}

    assert (await fhir_get(client, "Patient", auth)).status_code == 200
    assert (await fhir_get(client, f"Patient/{uuid.uuid4()}", auth)).status_code == 404  # read allowed
    assert (await fhir_get(client, "Appointment", auth)).status_code == 200
    assert (await fhir_get(client, f"Appointment/{uuid.uuid4()}", auth)).status_code == 403  # no read
    assert (await fhir_get(client, "Practitioner", auth)).status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}],
    }
    write = await client.post(FHIR, json=bundle, headers={**auth, "Content-Type": "application/fhir+json"})
    assert write.status_code == 403
    create = await client.post(
        f"{FHIR}/Patient",
        json={"resourceType": "Patient"},
        headers={**auth, "Content-Type": "application/fhir+json"},
    )
    assert create.status_code == 403
    assert write.json()["resourceType"] == "OperationOutcome"


async def test_smart_scopes_beyond_the_clients_or_malformed_are_invalid_scope(
    client: httpx.AsyncClient, make_keyed_client: Any
) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]}, scopes=(Scope.HL7,))

    for scope in ("system/Patient.rs", "patient/Patient.read", "system/Patient.sr", "system/Patient.rs?x=1"):
        response = await client.post("/oauth/token", data=token_form(assertion(client_id, key), scope=scope))
        assert response.status_code == 400, scope
        assert response.json()["error"] == "invalid_scope"


async def test_a_secret_client_may_ask_for_smart_scopes_too(
    client: httpx.AsyncClient, fhir_creds: Any
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": fhir_creds.client_id,
        "client_secret": fhir_creds.secret,
        "scope": "system/*.rs",
    }
    response = await client.post("/oauth/token", data=form)

    assert response.status_code == 200, response.text
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await fhir_get(client, "Practitioner", auth)).status_code == 200


async def test_keys_at_a_jwks_uri_are_fetched_cached_and_fetched_again_for_a_new_kid(
    client: httpx.AsyncClient, make_keyed_client: Any, jwks_server: JwksServer, app: Any
) -> None:
    old, new = key_pair(), key_pair("ES384")
    jwks_server.jwks = {"keys": [old.public_jwk]}
    client_id = await make_keyed_client(jwks_uri=jwks_server.url)

    first = await client.post("/oauth/token", data=token_form(assertion(client_id, old)))
    second = await client.post("/oauth/token", data=token_form(assertion(client_id, old)))
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert jwks_server.fetches == 1  # cached

    jwks_server.jwks = {"keys": [old.public_jwk, new.public_jwk]}  # the client rotates its key
    app.state.jwks_cache.MIN_REFRESH_SECONDS = 0.0
    try:
        rotated = await client.post("/oauth/token", data=token_form(assertion(client_id, new)))
    finally:
        del app.state.jwks_cache.MIN_REFRESH_SECONDS
    assert rotated.status_code == 200, rotated.text
    assert jwks_server.fetches == 2


async def test_expired_assertions_are_forgotten(
    client: httpx.AsyncClient,
    make_keyed_client: Any,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})
    short = assertion(client_id, key, lifetime=timedelta(seconds=1))
    assert (await client.post("/oauth/token", data=token_form(short))).status_code == 200
    jti = jwt.decode(short, options={"verify_signature": False})["jti"]

    async with system_sessionmaker() as session:
        mark_system(session)
        await session.execute(
            IntegrationClientAssertion.__table__.update()  # type: ignore[attr-defined]
            .where(IntegrationClientAssertion.jti == jti)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert (await client.post("/oauth/token", data=token_form(assertion(client_id, key)))).status_code == 200

    async with system_sessionmaker() as session:
        mark_system(session)
        left = await session.scalar(
            select(func.count())
            .select_from(IntegrationClientAssertion)
            .where(IntegrationClientAssertion.jti == jti)
        )
    assert left == 0


async def test_registration_takes_public_keys_only_and_then_issues_no_secret(
    client: httpx.AsyncClient, headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    key = key_pair("ES384")
    private_jwk = {**ECAlgorithm.to_jwk(key.private, as_dict=True), "kid": "k1"}

    refused = await client.post(
        f"{API}/integration-clients", json={"name": "EHR", "jwks": {"keys": [private_jwk]}}, headers=admin
    )
    both = await client.post(
        f"{API}/integration-clients",
        json={"name": "EHR", "jwks": {"keys": [key.public_jwk]}, "jwks_uri": "https://ehr.example/jwks"},
        headers=admin,
    )
    plain_http = await client.post(
        f"{API}/integration-clients",
        json={"name": "EHR", "jwks_uri": "http://ehr.example/jwks"},
        headers=admin,
    )
    created = await client.post(
        f"{API}/integration-clients", json={"name": "EHR", "jwks": {"keys": [key.public_jwk]}}, headers=admin
    )

    assert refused.status_code == 422
    assert "private" in refused.text
    assert both.status_code == 422
    assert plain_http.status_code == 422
    assert created.status_code == 201, created.text
    assert created.json()["client_secret"] is None
    listed = await client.get(f"{API}/integration-clients", headers=admin)
    [mine] = [c for c in listed.json() if c["client_id"] == created.json()["client_id"]]
    assert mine["jwks"] == {"keys": [key.public_jwk]}
    assert mine["secrets"] == []
    signed = assertion(created.json()["client_id"], key)
    assert (await client.post("/oauth/token", data=token_form(signed))).status_code == 200


async def test_removing_a_clients_keys_stops_its_tokens_at_once(
    client: httpx.AsyncClient, make_keyed_client: Any, headers_for: Any, tenant_id: uuid.UUID
) -> None:
    key = key_pair()
    client_id = await make_keyed_client(jwks={"keys": [key.public_jwk]})
    token = (await client.post("/oauth/token", data=token_form(assertion(client_id, key)))).json()[
        "access_token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await fhir_get(client, "Patient", auth)).status_code == 200

    removed = await client.put(
        f"{API}/integration-clients/{client_id}/keys", json={}, headers=headers_for(tenant_id, "admin")
    )

    assert removed.status_code == 200, removed.text
    assert (await fhir_get(client, "Patient", auth)).status_code == 401


async def test_smart_configuration_advertises_private_key_jwt(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{FHIR}/.well-known/smart-configuration")

    body = response.json()
    assert body["token_endpoint"] == TOKEN_URL
    assert body["token_endpoint_auth_methods_supported"][:2] == ["private_key_jwt", "client_secret_basic"]
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["ES384", "RS384"]
    assert "system/*.rs" in body["scopes_supported"]
    assert "client-confidential-asymmetric" in body["capabilities"]


async def test_cli_registers_a_client_with_a_jwks_file(database_url: str, tmp_path: Path) -> None:
    tenant = create_tenant(database_url, "SMART Clinic")
    key = key_pair()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.public_jwk]}))

    created = prm(
        database_url,
        "integration",
        "create",
        "--tenant-id",
        str(tenant),
        "--name",
        "Epic",
        "--jwks",
        str(jwks_file),
    )

    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["client_secret"] is None
    listed = prm(database_url, "integration", "list", "--tenant-id", str(tenant))
    [registered] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert registered["jwks"]["keys"][0]["kid"] == key.kid
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}))
    refused = prm(
        database_url,
        "integration",
        "create",
        "--tenant-id",
        str(tenant),
        "--name",
        "Epic",
        "--jwks",
        str(bad),
    )
    assert refused.returncode != 0
    assert "jwks" in refused.stderr
