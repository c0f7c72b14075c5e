"""Authentication: only well-formed, correctly signed, current tokens for an existing tenant get in."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.app import create_app
from core.auth import Role, TokenVerifier, issue_dev_token
from core.codec import new_key_setting
from core.errors import Unauthorized
from core.settings import DEV_JWT_SECRET, Settings

URL = "/api/v1/prm/practitioners"


def claims_for(tenant: uuid.UUID, **overrides: object) -> dict:
    now = datetime.now(UTC)
    claims: dict = {
        "sub": "user-1",
        "tenant_id": str(tenant),
        "roles": ["coordinator"],
        "iss": "prm",
        "aud": "prm-api",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def sign(claims: dict, secret: str = DEV_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()


def with_payload(token: str, payload: dict) -> str:
    """Swap the payload of a signed token, keeping its header and signature."""
    header, _, signature = token.split(".")
    return f"{header}.{b64(payload)}.{signature}"


async def test_valid_token_is_accepted(client: httpx.AsyncClient, tenant_id: uuid.UUID) -> None:
    resp = await client.get(URL, headers={"Authorization": f"Bearer {sign(claims_for(tenant_id))}"})
    assert resp.status_code == 200


def invalid_tokens(tenant: uuid.UUID) -> dict[str, str | None]:
    """Named tokens that must all be refused. None means: send no Authorization header."""
    good = sign(claims_for(tenant))
    epoch = datetime.now(UTC)
    admin_claims = {
        **claims_for(tenant, roles=["admin"]),
        "iat": epoch.timestamp(),
        "exp": (epoch + timedelta(minutes=5)).timestamp(),
    }
    unsigned_header = b64({"alg": "none", "typ": "JWT"})
    unsigned_payload = b64(
        {**claims_for(tenant), "iat": int(epoch.timestamp()), "exp": int(epoch.timestamp()) + 300}
    )
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "three_garbage_parts": "aaa.bbb.ccc",
        "alg_none": f"{unsigned_header}.{unsigned_payload}.",
        "expired": sign(claims_for(tenant, iat=epoch - timedelta(hours=2), exp=epoch - timedelta(hours=1))),
        "not_yet_valid": sign(claims_for(tenant, nbf=epoch + timedelta(hours=1))),
        "wrong_audience": sign(claims_for(tenant, aud="someone-else")),
        "wrong_issuer": sign(claims_for(tenant, iss="evil-issuer")),
        "wrong_secret": sign(claims_for(tenant), secret="x" * 48),
        "tampered_payload": with_payload(good, admin_claims),
        "tampered_signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "missing_exp": sign(claims_for(tenant, exp=None)),
        "missing_sub": sign(claims_for(tenant, sub=None)),
        "missing_tenant": sign(claims_for(tenant, tenant_id=None)),
        "missing_roles": sign(claims_for(tenant, roles=None)),
        "missing_iss": sign(claims_for(tenant, iss=None)),
        "missing_aud": sign(claims_for(tenant, aud=None)),
        "unknown_role": sign(claims_for(tenant, roles=["superuser"])),
        "empty_roles": sign(claims_for(tenant, roles=[])),
        "tenant_not_uuid": sign(claims_for(tenant, tenant_id="clinic-1")),
        "unknown_tenant": sign(claims_for(uuid.uuid4())),
        "other_algorithm_hs512": sign(claims_for(tenant), alg="HS512"),
    }


async def test_every_invalid_token_is_refused_with_401(
    client: httpx.AsyncClient, tenant_id: uuid.UUID
) -> None:
    cases = invalid_tokens(tenant_id)
    assert len(cases) >= 12
    accepted = {}
    for name, token in cases.items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        resp = await client.get(URL, headers=headers)
        if resp.status_code != 401 or "detail" not in resp.json():
            accepted[name] = resp.status_code
    assert accepted == {}


async def test_non_bearer_scheme_is_refused(client: httpx.AsyncClient, tenant_id: uuid.UUID) -> None:
    token = sign(claims_for(tenant_id))
    resp = await client.get(URL, headers={"Authorization": f"Basic {token}"})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_inactive_tenant_token_is_refused(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, system_sessionmaker: Callable
) -> None:
    from core.database import mark_system
    from domain.tenants.models import Tenant

    async with system_sessionmaker() as session:
        mark_system(session)
        tenant = await session.get(Tenant, tenant_id)
        tenant.is_active = False
        await session.commit()
    resp = await client.get(URL, headers={"Authorization": f"Bearer {sign(claims_for(tenant_id))}"})
    assert resp.status_code == 401


async def test_viewer_cannot_write(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Callable
) -> None:
    resp = await client.post(
        URL, json={"first_name": "A", "last_name": "B"}, headers=headers_for(tenant_id, Role.VIEWER)
    )
    assert resp.status_code == 403
    assert resp.json()["detail"]


async def test_viewer_can_read(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Callable
) -> None:
    resp = await client.get(URL, headers=headers_for(tenant_id, Role.VIEWER))
    assert resp.status_code == 200


async def test_practitioner_role_cannot_hard_delete(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Callable
) -> None:
    created = await client.post(
        URL, json={"first_name": "A", "last_name": "B"}, headers=headers_for(tenant_id)
    )
    resp = await client.delete(
        f"{URL}/{created.json()['id']}", headers=headers_for(tenant_id, Role.PRACTITIONER)
    )
    assert resp.status_code == 403


# --- asymmetric deployments -------------------------------------------------------------------------------


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, public


def test_rs256_deployment_accepts_tokens_signed_by_its_key() -> None:
    key, public = _rsa_pair()
    verifier = TokenVerifier(Settings(jwt_algorithm="RS256", jwt_public_key=public))
    tenant = uuid.uuid4()
    principal = verifier.verify(sign(claims_for(tenant), secret=key, alg="RS256"))  # type: ignore[arg-type]
    assert principal.tenant_id == tenant
    assert principal.roles == frozenset({Role.COORDINATOR})


def test_rs256_deployment_refuses_hmac_token_signed_with_its_public_key() -> None:
    """The classic algorithm-confusion attack: HS256 keyed with the (public) RSA key."""
    _key, public = _rsa_pair()
    verifier = TokenVerifier(Settings(jwt_algorithm="RS256", jwt_public_key=public))
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps(claims_for(uuid.uuid4()), default=lambda d: int(d.timestamp())).encode(),
        key=b"irrelevant-but-long-enough-secret-0123456789",
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized):
        verifier.verify(forged)


def test_rs256_deployment_refuses_tokens_of_another_key() -> None:
    _key, public = _rsa_pair()
    other, _ = _rsa_pair()
    verifier = TokenVerifier(Settings(jwt_algorithm="RS256", jwt_public_key=public))
    with pytest.raises(Unauthorized):
        verifier.verify(sign(claims_for(uuid.uuid4()), secret=other, alg="RS256"))  # type: ignore[arg-type]


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """A local HTTP server publishing one ES256 key as a JWKS document."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "key-1", "use": "sig", "alg": "ES256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", key
    server.shutdown()


def test_es256_deployment_verifies_through_jwks(jwks_server: tuple[str, ec.EllipticCurvePrivateKey]) -> None:
    url, key = jwks_server
    verifier = TokenVerifier(Settings(jwt_algorithm="ES256", jwt_jwks_url=url))
    tenant = uuid.uuid4()
    token = jwt.encode(claims_for(tenant), key, algorithm="ES256", headers={"kid": "key-1"})
    assert verifier.verify(token).tenant_id == tenant
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims_for(tenant), stranger, algorithm="ES256", headers={"kid": "key-1"})
    with pytest.raises(Unauthorized):
        verifier.verify(forged)


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="PRM_JWT_SECRET"):
        Settings(env="production")


def test_production_refuses_disabled_auth() -> None:
    with pytest.raises(ValueError, match="PRM_AUTH_ENABLED"):
        Settings(env="production", jwt_secret="s" * 40, auth_enabled=False)


def test_production_refuses_to_store_temporal_payloads_in_clear() -> None:
    with pytest.raises(ValueError, match="PRM_PAYLOAD_ENCRYPTION_KEYS"):
        Settings(env="production", jwt_secret="s" * 40)
    Settings(
        env="production",
        jwt_secret="s" * 40,
        payload_encryption_keys=new_key_setting(),
        audit_hmac_key="k" * 32,
    )


def test_production_refuses_an_audit_chain_without_its_key() -> None:
    with pytest.raises(ValueError, match="PRM_AUDIT_HMAC_KEY must be set"):
        Settings(env="production", jwt_secret="s" * 40, payload_encryption_keys=new_key_setting())


def test_a_short_audit_key_is_refused() -> None:
    with pytest.raises(ValueError, match="PRM_AUDIT_HMAC_KEY must be at least 32 bytes"):
        Settings(audit_hmac_key="short")


async def test_disabled_auth_acts_as_admin_of_the_named_tenant(
    settings: Settings, database_url: str, tenant_id: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    open_settings = settings.model_copy(update={"auth_enabled": False})
    application = create_app(open_settings, database_url=database_url)
    with caplog.at_level("WARNING"):
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                ok = await c.get(URL, headers={"X-Tenant-ID": str(tenant_id)})
                missing = await c.get(URL)
            async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.10") as c:
                on_network = await c.get(URL, headers={"X-Tenant-ID": str(tenant_id)})
    assert ok.status_code == 200
    assert missing.status_code == 401
    assert on_network.status_code == 401  # an open API answers on a loopback connection only
    assert "loopback" in on_network.json()["detail"]
    assert "AUTHENTICATION IS DISABLED" in caplog.text


def test_a_verified_token_is_refused_once_it_expires(tenant_id: uuid.UUID) -> None:
    """Verified tokens are remembered (no signature check on each request), but never past their expiry."""
    settings = Settings(env="test", jwt_leeway_seconds=0)
    verifier = TokenVerifier(settings)
    expires = datetime.now(UTC) + timedelta(seconds=1)
    token = jwt.encode(
        claims_for(tenant_id, exp=expires), settings.jwt_secret, algorithm=settings.jwt_algorithm
    )
    assert verifier.verify(token).tenant_id == tenant_id
    assert verifier.verify(token).tenant_id == tenant_id  # remembered
    while datetime.now(UTC) < expires + timedelta(milliseconds=50):
        threading.Event().wait(0.05)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


async def practitioners_as_served_on(application: object, address: str, token: str) -> httpx.Response:
    """GET the practitioners list on a connection that reached `address` (the ASGI `server` uvicorn fills
    from the socket the connection was accepted on)."""
    transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{address}") as c:
        return await c.get(URL, headers={"Authorization": f"Bearer {token}"})


async def test_development_takes_published_secret_tokens_only_on_a_loopback_address(
    settings: Settings, database_url: str, tenant_id: uuid.UUID
) -> None:
    """`uvicorn --host 0.0.0.0` without PRM_ENV is development: a token anyone can mint with the secret in
    the code must not open the API to the network, whatever PRM_API_HOST says."""
    development = settings.model_copy(update={"env": "development"})
    application = create_app(development, database_url=database_url)
    minted = sign(claims_for(tenant_id, roles=["admin"]))
    async with application.router.lifespan_context(application):
        on_network = await practitioners_as_served_on(application, "192.0.2.10", minted)
        on_loopback = await practitioners_as_served_on(application, "127.0.0.1", minted)
        on_ipv6_loopback = await practitioners_as_served_on(application, "[::1]", minted)
    assert on_network.status_code == 401
    assert "PRM_JWT_SECRET" in on_network.json()["detail"]
    assert DEV_JWT_SECRET not in on_network.text
    assert on_loopback.status_code == 200
    assert on_ipv6_loopback.status_code == 200


async def test_development_with_a_real_secret_takes_tokens_on_any_address(
    settings: Settings, database_url: str, tenant_id: uuid.UUID
) -> None:
    secret = "a-real-secret-nobody-published-0123456789"
    development = settings.model_copy(update={"env": "development", "jwt_secret": secret})
    application = create_app(development, database_url=database_url)
    async with application.router.lifespan_context(application):
        real = await practitioners_as_served_on(
            application, "192.0.2.10", sign(claims_for(tenant_id), secret)
        )
        forged = await practitioners_as_served_on(application, "192.0.2.10", sign(claims_for(tenant_id)))
    assert real.status_code == 200
    assert forged.status_code == 401


def test_a_served_api_refuses_the_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PRM_ENV=test (the published secret, on any address) is the in-process suite's alone."""
    from api.app import create_app_from_env
    from core.settings import get_settings

    monkeypatch.setenv("PRM_ENV", "test")
    get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="PRM_ENV=test"):
            create_app_from_env()
    finally:
        get_settings.cache_clear()


def seconds(at: datetime) -> int:
    return int(at.timestamp())


def token_times(tenant: uuid.UUID, **times: object) -> str:
    """A correctly signed coordinator token whose `exp`, `iat` and `nbf` are `times` (None: absent)."""
    return sign(
        {**claims_for(tenant, iat=None, exp=None), **{k: v for k, v in times.items() if v is not None}}
    )


async def get_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(URL, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_time_claim_written_as_a_string_is_refused(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, claim: str
) -> None:
    """PyJWT takes `"1767225600"` for a date; RFC 7519 says a NumericDate is a JSON number."""
    now = seconds(datetime.now(UTC))
    times: dict[str, object] = {"iat": now - 10, "nbf": now - 10, "exp": now + 300}
    times[claim] = str(times[claim])
    resp = await get_with(client, token_times(tenant_id, **times))
    assert resp.status_code == 401
    assert claim in resp.json()["detail"]
    assert DEV_JWT_SECRET not in resp.text


async def test_a_token_that_expires_in_a_hundred_years_is_refused(
    client: httpx.AsyncClient, tenant_id: uuid.UUID
) -> None:
    now = datetime.now(UTC)
    resp = await get_with(
        client, token_times(tenant_id, iat=seconds(now), exp=seconds(now.replace(year=now.year + 100)))
    )
    assert resp.status_code == 401
    assert resp.json() == {"detail": "Invalid token: it lives longer than the 86400 seconds allowed."}


async def test_a_long_lived_token_without_iat_is_measured_from_now(
    client: httpx.AsyncClient, tenant_id: uuid.UUID
) -> None:
    now = datetime.now(UTC)
    resp = await get_with(client, token_times(tenant_id, exp=seconds(now + timedelta(days=2))))
    assert resp.status_code == 401
    assert "lives longer" in resp.json()["detail"]


async def test_a_token_that_lives_exactly_the_maximum_is_accepted_and_a_second_more_is_not(
    client: httpx.AsyncClient, tenant_id: uuid.UUID
) -> None:
    issued = seconds(datetime.now(UTC))
    at_limit = await get_with(client, token_times(tenant_id, iat=issued, exp=issued + 86400))
    past_limit = await get_with(client, token_times(tenant_id, iat=issued, exp=issued + 86401))
    assert at_limit.status_code == 200
    assert past_limit.status_code == 401


def test_the_maximum_lifetime_is_a_setting(tenant_id: uuid.UUID) -> None:
    verifier = TokenVerifier(Settings(env="test", jwt_max_lifetime_seconds=3600, dev_token_ttl_minutes=60))
    issued = seconds(datetime.now(UTC))
    assert verifier.verify(token_times(tenant_id, iat=issued, exp=issued + 3600)).tenant_id == tenant_id
    with pytest.raises(Unauthorized, match="3600 seconds"):
        verifier.verify(token_times(tenant_id, iat=issued, exp=issued + 3601))


def test_development_tokens_never_outlive_the_maximum(tenant_id: uuid.UUID) -> None:
    settings = Settings(env="test")
    with pytest.raises(ValueError, match="PRM_JWT_MAX_LIFETIME_SECONDS"):
        issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.ADMIN], ttl=timedelta(days=2))
    with pytest.raises(ValueError, match="PRM_DEV_TOKEN_TTL_MINUTES"):
        Settings(env="test", dev_token_ttl_minutes=25 * 60)
    with pytest.raises(ValueError, match="PRM_INTEGRATION_TOKEN_TTL_SECONDS"):
        Settings(env="test", jwt_max_lifetime_seconds=120, dev_token_ttl_minutes=1)
