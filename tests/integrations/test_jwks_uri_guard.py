"""A `jwks_uri` is a URL a tenant admin names and this server fetches: it must not be a way into the internal
network. Refused at registration (422 naming the field) and again at each fetch (DNS can change) unless it
is https to a host whose every address is public; the fetch goes to the address checked, follows no
redirect, and is bounded in size and time. No transaction is held open while it runs."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import httpx
import pytest

from core.errors import Unprocessable
from domain.integrations.keys import AssertionRefused, IPAddress, JwksCache, JwksUriGuard
from tests.integrations.jwks_support import JwksServer, assertion, key_pair, token_form
from tests.stack.cli_support import create_tenant, prm

API = "/api/v1/prm"
PUBLIC = ipaddress.ip_address("93.184.216.34")


def resolving(*answers: list[str]) -> Any:
    """A resolver (the DNS, which cannot run here) answering each lookup with the next list of addresses."""
    queue = [[ipaddress.ip_address(a) for a in answer] for answer in answers]

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return resolve


INTERNAL_URIS = [
    "https://127.0.0.1/jwks",
    "https://localhost/jwks",
    "https://2130706433/jwks",  # 127.0.0.1 written as one number: resolved, then judged
    "https://[::1]/jwks",
    "https://[::ffff:127.0.0.1]/jwks",
    "https://[::ffff:10.0.0.1]/jwks",
    "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/jwks",
    "https://172.16.0.1/jwks",
    "https://192.168.1.1/jwks",
    "https://100.64.0.1/jwks",
    "https://[fe80::1]/jwks",
    "https://[fc00::1]/jwks",
    "https://0.0.0.0/jwks",
    "https://[::]/jwks",
    "https://224.0.0.1/jwks",
    "https://[ff02::1]/jwks",
    "https://240.0.0.1/jwks",
]


@pytest.mark.parametrize("uri", INTERNAL_URIS)
async def test_registering_a_jwks_uri_that_reaches_an_internal_address_is_422_naming_the_field(
    client: httpx.AsyncClient, headers_for: Any, tenant_id: uuid.UUID, uri: str
) -> None:
    response = await client.post(
        f"{API}/integration-clients",
        json={"name": "EHR", "jwks_uri": uri},
        headers=headers_for(tenant_id, "admin"),
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "jwks_uri"]
    assert "public https server" in problem["msg"]


async def test_replacing_keys_with_an_internal_jwks_uri_is_422_too(
    client: httpx.AsyncClient, headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    created = await client.post(
        f"{API}/integration-clients",
        json={"name": "EHR", "jwks": {"keys": [key_pair().public_jwk]}},
        headers=admin,
    )
    client_id = created.json()["client_id"]

    response = await client.put(
        f"{API}/integration-clients/{client_id}/keys",
        json={"jwks_uri": "https://169.254.169.254/latest/meta-data/iam"},
        headers=admin,
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "jwks_uri"]


async def test_plain_http_is_refused_even_to_a_public_address() -> None:
    guard = JwksUriGuard(resolve=resolving([str(PUBLIC)]))

    with pytest.raises(Unprocessable, match="https"):
        await guard.registrable("http://ehr.example/jwks")


@pytest.mark.parametrize(
    "addresses", [["10.0.0.7"], [str(PUBLIC), "192.168.0.9"], ["::ffff:169.254.169.254"]]
)
async def test_a_name_that_resolves_to_a_private_address_is_refused(addresses: list[str]) -> None:
    guard = JwksUriGuard(resolve=resolving(addresses))

    with pytest.raises(Unprocessable) as refused:
        await guard.registrable("https://ehr.example/.well-known/jwks.json")

    assert refused.value.loc == ("body", "jwks_uri")


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(Unprocessable, match="does not resolve"):
        await JwksUriGuard().registrable("https://no-such-host.invalid/jwks")


async def test_a_public_name_is_fetched_at_the_address_checked_under_its_own_name() -> None:
    guard = JwksUriGuard(resolve=resolving([str(PUBLIC)]))

    assert await guard.registrable("https://ehr.example/jwks?v=2") == "https://ehr.example/jwks?v=2"
    target = await guard.target("https://ehr.example/jwks?v=2")

    assert target.url == "https://93.184.216.34:443/jwks?v=2"
    assert (target.host_header, target.tls_name) == ("ehr.example", "ehr.example")


async def test_a_name_rebound_to_a_private_address_after_registration_is_refused_at_fetch() -> None:
    guard = JwksUriGuard(resolve=resolving([str(PUBLIC)], ["10.0.0.7"]))
    await guard.registrable("https://ehr.example/jwks")  # public when registered
    cache = JwksCache(ttl_seconds=300, timeout_seconds=2, guard=guard)

    with pytest.raises(AssertionRefused, match="private"):
        await cache.keys("https://ehr.example/jwks")  # private when fetched: no request is sent


async def test_the_fetch_connects_to_the_checked_address_without_resolving_the_name_again(
    jwks_server: JwksServer,
) -> None:
    key = key_pair()
    jwks_server.jwks = {"keys": [key.public_jwk]}
    # `.invalid` never resolves: the fetch can only have gone to the address the guard checked.
    guard = JwksUriGuard(allow_private=True, resolve=resolving(["127.0.0.1"]))
    cache = JwksCache(ttl_seconds=300, timeout_seconds=2, guard=guard)

    keys = await cache.keys(f"http://jwks.invalid:{jwks_server.port}/jwks.json")

    assert [k["kid"] for k in keys] == [key.kid]
    assert jwks_server.hosts == [f"jwks.invalid:{jwks_server.port}"]


async def test_a_redirect_is_not_followed(jwks_server: JwksServer) -> None:
    jwks_server.redirect_to = "http://169.254.169.254/latest/meta-data"
    cache = JwksCache(ttl_seconds=300, timeout_seconds=2, guard=JwksUriGuard(allow_private=True))

    with pytest.raises(AssertionRefused, match="answered 302"):
        await cache.keys(jwks_server.url)
    assert jwks_server.fetches == 1


async def test_a_slow_jwks_uri_is_cut_at_the_timeout(jwks_server: JwksServer) -> None:
    jwks_server.delay = 1.5
    cache = JwksCache(ttl_seconds=300, timeout_seconds=0.3, guard=JwksUriGuard(allow_private=True))

    with pytest.raises(AssertionRefused, match="in time"):
        await cache.keys(jwks_server.url)


async def test_an_oversized_jwk_set_is_refused(jwks_server: JwksServer) -> None:
    jwks_server.jwks = {"keys": [{"kid": "x" * 70_000}]}
    cache = JwksCache(ttl_seconds=300, timeout_seconds=2, guard=JwksUriGuard(allow_private=True))

    with pytest.raises(AssertionRefused, match="too large"):
        await cache.keys(jwks_server.url)


async def test_a_token_request_is_refused_once_its_jwks_uri_is_no_longer_allowed(
    client: httpx.AsyncClient, make_keyed_client: Any, jwks_server: JwksServer, app: Any
) -> None:
    key = key_pair()
    jwks_server.jwks = {"keys": [key.public_jwk]}
    client_id = await make_keyed_client(jwks_uri=jwks_server.url)  # registered while private was allowed
    app.state.jwks_cache.guard = JwksUriGuard(allow_private=False)

    response = await client.post("/oauth/token", data=token_form(assertion(client_id, key)))

    assert response.status_code == 401
    # Plain http on loopback: allowed only with private addresses, and checked again at the fetch.
    assert "jwks_uri must be an https URL" in response.json()["error_description"]
    assert jwks_server.fetches == 0


async def test_no_database_connection_is_held_while_the_jwks_uri_is_fetched(
    client: httpx.AsyncClient, make_keyed_client: Any, jwks_server: JwksServer, app: Any
) -> None:
    key = key_pair()
    jwks_server.jwks = {"keys": [key.public_jwk]}
    client_id = await make_keyed_client(jwks_uri=jwks_server.url)
    pool = app.state.engine.pool
    held_during_fetch: list[int] = []
    jwks_server.on_request = lambda: held_during_fetch.append(pool.checkedout())
    jwks_server.delay = 0.3

    response = await client.post("/oauth/token", data=token_form(assertion(client_id, key)))

    assert response.status_code == 200, response.text
    assert held_during_fetch == [0]


def test_the_cli_applies_the_same_rule_and_the_same_setting(database_url: str) -> None:
    tenant = create_tenant(database_url, "SMART CLI Clinic")
    create = ("integration", "create", "--tenant-id", str(tenant), "--name", "Epic")
    local = "http://127.0.0.1:8/jwks.json"  # a loopback address: registered, never fetched here

    refused = prm(database_url, *create, "--jwks-uri", local)
    allowed = prm(database_url, *create, "--jwks-uri", local, PRM_SMART_JWKS_ALLOW_PRIVATE_ADDRESSES="true")

    assert refused.returncode != 0
    assert "jwks_uri must be an https URL" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
