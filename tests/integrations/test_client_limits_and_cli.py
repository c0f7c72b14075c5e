"""Integration clients: their rate limits (like the webhooks', per client and per token-requesting
address), SMART discovery, and `prm integration ...` as an operator runs it."""

from __future__ import annotations

import json
import uuid

import httpx

from api.app import create_app
from core.settings import Settings
from tests.integrations.conftest import ClientFactory, request_token
from tests.stack.cli_support import create_tenant, prm


async def test_each_client_and_each_token_requesting_address_has_a_rate_limit(
    settings: Settings, database_url: str, tenant_id: uuid.UUID, make_client: ClientFactory
) -> None:
    limited = settings.model_copy(
        update={
            "rate_limits_enabled": True,
            "redis_url": None,
            "rate_limit_per_integration_client": "3/minute",
            "rate_limit_per_token_source": "2/minute",
        }
    )
    app = create_app(limited, database_url=database_url)
    creds = await make_client(tenant_id)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = await request_token(client, creds)
            assert first.status_code == 200
            assert (await request_token(client, creds)).status_code == 200
            refused_token = await request_token(client, creds)
            headers = {"Authorization": f"Bearer {first.json()['access_token']}"}
            statuses = [(await client.get("/fhir/R4/Patient", headers=headers)).status_code for _ in range(4)]
            refused_call = await client.get("/fhir/R4/Patient", headers=headers)

    assert refused_token.status_code == 429
    assert refused_token.json()["error"] == "slow_down"
    assert "retry-after" in refused_token.headers
    assert statuses == [200, 200, 200, 429]
    assert refused_call.json()["issue"][0]["code"] == "throttled"


async def test_smart_configuration_names_the_token_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/R4/.well-known/smart-configuration")

    assert response.status_code == 200
    assert response.json()["token_endpoint"] == "http://testserver/oauth/token"
    assert response.json()["grant_types_supported"] == ["client_credentials"]


async def test_cli_creates_rotates_lists_and_revokes_a_client(database_url: str) -> None:
    tenant = create_tenant(database_url, "EHR Clinic")

    created = prm(
        database_url,
        "integration",
        "create",
        "--tenant-id",
        str(tenant),
        "--name",
        "Epic",
        "--scope",
        "fhir",
        "--scope",
        "hl7",
    )
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["scope"] == "fhir hl7"
    assert issued["client_secret"].startswith("prm_secret_")

    rotated = prm(
        database_url, "integration", "rotate", "--tenant-id", str(tenant), "--client-id", issued["client_id"]
    )
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)
    assert new_secret["client_secret"] != issued["client_secret"]

    revoked = prm(
        database_url,
        "integration",
        "revoke",
        "--tenant-id",
        str(tenant),
        "--client-id",
        issued["client_id"],
        "--secret-id",
        issued["secret_id"],
    )
    assert revoked.returncode == 0, revoked.stderr

    listed = prm(database_url, "integration", "list", "--tenant-id", str(tenant))
    assert listed.returncode == 0, listed.stderr
    [client] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert client["client_id"] == issued["client_id"]
    assert issued["client_secret"] not in listed.stdout
    states = {s["secret_id"]: s["revoked_at"] is not None for s in client["secrets"]}
    assert states == {issued["secret_id"]: True, new_secret["secret_id"]: False}

    unknown = prm(
        database_url,
        "integration",
        "rotate",
        "--tenant-id",
        str(uuid.uuid4()),
        "--client-id",
        issued["client_id"],
    )
    assert unknown.returncode != 0
    assert "not found" in unknown.stderr
