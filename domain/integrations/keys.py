"""SMART Backend Services client authentication (`private_key_jwt`, RFC 7523): an integration client
registers its public keys (a JWK Set, inline or at a `jwks_uri`) and signs a short assertion with its
private key instead of sending a secret.

An assertion is accepted when it is signed RS384 or ES384 with a key of the client's set (named by `kid`),
`iss` and `sub` are the client id, `aud` is this server's token URL, `exp` is at most five minutes ahead,
and its `jti` has never been accepted for this client (the primary key of `integration_client_assertions`
refuses a second one, so two replicas racing the same assertion cannot both win). Refusals say why in
`AssertionRefused.reason` (what the client got wrong, nothing about other clients).

A `jwks_uri` is fetched with httpx and kept `PRM_SMART_JWKS_CACHE_SECONDS`; an assertion naming a `kid` the
cached set lacks fetches it once more (at most every `MIN_REFRESH_SECONDS`), so a key rotation at the
client takes effect at once without letting unknown `kid`s make us fetch on every request. A `jwks_uri`
is a URL a tenant admin names and this server fetches: `JwksUriGuard` refuses one that is not https to a
public address, at registration and at each fetch, and the fetch goes to the address it checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.client_credentials import ClientCaller, Scope
from core.errors import Unprocessable
from domain.integrations.models import IntegrationClient, IntegrationClientAssertion
from domain.tenants.models import Tenant

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The algorithms SMART Backend Services names, and the key type each needs.
ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
MAX_ASSERTION_SECONDS = 300  # `exp` at most this far ahead
MAX_KEYS = 20
MAX_KID_LENGTH = 255
MAX_JTI_LENGTH = 255
MAX_JWKS_BYTES = 64 * 1024
MAX_URI_LENGTH = 2000
MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class AssertionRefused(Exception):
    """A client assertion that does not authenticate its client; `reason` tells the client why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- registering keys -----------------------------------------------------------------------------------


def _key_problem(key: Any) -> str | None:
    """Why one JWK cannot be registered, or None."""
    if not isinstance(key, dict):
        return "each key must be a JSON object"
    kid = key.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        return f"each key needs a `kid` of 1 to {MAX_KID_LENGTH} characters (assertions name their key by it)"
    if PRIVATE_MEMBERS & key.keys():
        return f"key {kid[:40]!r} holds private or symmetric key material: register only public keys"
    if key.get("kty") not in ("RSA", "EC"):
        return f"key {kid[:40]!r}: only RSA (RS384) and EC P-384 (ES384) keys are accepted"
    if key.get("kty") == "EC" and key.get("crv") != "P-384":
        return f"key {kid[:40]!r}: an EC key must be on the P-384 curve (ES384)"
    if "alg" in key and key["alg"] not in ALGORITHMS:
        return f"key {kid[:40]!r}: alg must be RS384 or ES384"
    if key.get("use", "sig") != "sig":
        return f"key {kid[:40]!r}: use must be sig"
    try:
        parsed = jwt.PyJWK(key)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return f"key {kid[:40]!r} is not a valid JWK"
    if key["kty"] == "RSA" and parsed.key.key_size < MIN_RSA_BITS:
        return f"key {kid[:40]!r}: an RSA key needs at least {MIN_RSA_BITS} bits"
    return None


def check_jwks(jwks: Any) -> dict[str, Any]:
    """The JWK Set to register (its public keys, as given); Unprocessable says what is wrong with it."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
        raise Unprocessable(f'jwks must be a JWK Set: {{"keys": [...]}} with 1 to {MAX_KEYS} keys.')
    for key in keys:
        problem = _key_problem(key)
        if problem is not None:
            raise Unprocessable(f"jwks: {problem}.")
    kids = [key["kid"] for key in keys]
    if len(set(kids)) != len(kids):
        raise Unprocessable("jwks: each key needs its own kid.")
    if len(json.dumps(jwks)) > MAX_JWKS_BYTES:
        raise Unprocessable(f"jwks is larger than {MAX_JWKS_BYTES // 1024} KiB.")
    return {"keys": keys}


# ---- where a jwks_uri may point -------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return list(dict.fromkeys(addresses))


def internal_address(address: IPAddress) -> bool:
    """Whether an address is one a server must not be sent to on a tenant's behalf: loopback, private,
    link-local (169.254.169.254, the clouds' metadata service), multicast, reserved, unspecified, shared
    (carrier-grade NAT), in IPv4 or IPv6, an IPv4-mapped IPv6 address judged as the IPv4 one it carries."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (
        not address.is_global
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class FetchTarget:
    """Where a checked `jwks_uri` is fetched: the URL with the host replaced by the address that was checked
    (so nothing resolves the name a second time), and the name for the Host header and TLS."""

    url: str
    host_header: str
    tls_name: str | None


class JwksUriRefused(Exception):
    """A `jwks_uri` this server will not fetch; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JwksUriGuard:
    """Which `jwks_uri`s may be registered and fetched (a tenant admin names the URL, this server fetches it:
    without a guard, a way to reach internal hosts). https only, to a host whose every address is public;
    `allow_private` (PRM_SMART_JWKS_ALLOW_PRIVATE_ADDRESSES, for development and tests) lifts the address
    rule, and then plain http is accepted on a loopback address."""

    allow_private: bool = False
    resolve: Resolver = resolve_host
    resolve_timeout_seconds: float = 5.0  # at registration (a fetch is bounded by its own timeout, in all)

    async def target(self, uri: str) -> FetchTarget:
        """Where to fetch `uri`, its host resolved once and every address checked; JwksUriRefused if not."""
        parts = urlsplit(uri.strip())
        host = parts.hostname
        if len(uri) > MAX_URI_LENGTH or not host:
            raise JwksUriRefused(f"jwks_uri must be an absolute URL of at most {MAX_URI_LENGTH} characters.")
        if parts.username or parts.password:
            raise JwksUriRefused("jwks_uri must not carry credentials.")
        if parts.scheme != "https" and not (self.allow_private and parts.scheme == "http"):
            raise JwksUriRefused("jwks_uri must be an https URL.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise JwksUriRefused("jwks_uri has an invalid port.") from exc
        try:
            addresses = await self.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise JwksUriRefused("jwks_uri's host does not resolve.") from exc
        if not addresses:
            raise JwksUriRefused("jwks_uri's host does not resolve.")
        if not self.allow_private and any(internal_address(a) for a in addresses):
            raise JwksUriRefused(
                "jwks_uri's host resolves to a loopback, private, link-local, multicast, reserved or "
                "unspecified address: it must be a public https server."
            )
        address = addresses[0]
        if parts.scheme != "https" and not (self.allow_private and address.is_loopback):
            raise JwksUriRefused("jwks_uri must be an https URL.")
        netloc = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
        literal = _is_literal(host)
        return FetchTarget(
            url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
            host_header=(f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else ""),
            tls_name=None if literal or parts.scheme != "https" else host,
        )

    async def registrable(self, uri: str) -> str:
        """A `jwks_uri` to register (checked now, and again at every fetch since DNS can change);
        Unprocessable naming the field if it is refused."""
        try:
            async with asyncio.timeout(self.resolve_timeout_seconds):
                await self.target(uri)
        except TimeoutError as exc:
            raise Unprocessable("jwks_uri's host did not resolve in time.", loc=("body", "jwks_uri")) from exc
        except JwksUriRefused as exc:
            raise Unprocessable(exc.reason, loc=("body", "jwks_uri")) from exc
        return uri.strip()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---- fetching keys --------------------------------------------------------------------------------------


@dataclass
class _Fetched:
    at: float
    keys: list[dict[str, Any]]


class JwksCache:
    """JWK Sets fetched from clients' `jwks_uri`, each kept `ttl_seconds` (one per app process). A fetch
    goes to the address `guard` checked (no second resolution), follows no redirect, reads at most
    `MAX_JWKS_BYTES` and takes at most `timeout_seconds` in all (resolution included)."""

    MIN_REFRESH_SECONDS = 10.0
    MAX_ENTRIES = 1024

    def __init__(self, ttl_seconds: float, timeout_seconds: float, guard: JwksUriGuard | None = None) -> None:
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self.guard = guard or JwksUriGuard()
        self._entries: dict[str, _Fetched] = {}

    async def keys(self, uri: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The usable keys of the set at `uri`: cached, or fetched when stale (or when `refresh` asks and
        the cached copy is older than `MIN_REFRESH_SECONDS`)."""
        now = time.monotonic()
        cached = self._entries.get(uri)
        if cached is not None:
            age = now - cached.at
            if age < self.ttl_seconds and not (refresh and age >= self.MIN_REFRESH_SECONDS):
                return cached.keys
        try:
            async with asyncio.timeout(self.timeout_seconds):
                keys = await self._fetch(uri)
        except TimeoutError as exc:
            raise AssertionRefused("The client's jwks_uri did not answer in time.") from exc
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[uri] = _Fetched(now, keys)
        return keys

    async def _fetch(self, uri: str) -> list[dict[str, Any]]:
        try:
            target = await self.guard.target(uri)
        except JwksUriRefused as exc:
            raise AssertionRefused(f"The client's {exc.reason[0].lower()}{exc.reason[1:]}") from exc
        extensions = {"sni_hostname": target.tls_name} if target.tls_name else {}
        headers = {"Accept": "application/json", "Host": target.host_header}
        # trust_env=False: no proxy from the environment, which would resolve the name again.
        fetcher = httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False, trust_env=False)
        try:
            async with (
                fetcher as client,
                client.stream("GET", target.url, headers=headers, extensions=extensions) as response,
            ):
                if response.status_code != 200:
                    raise AssertionRefused(f"The client's jwks_uri answered {response.status_code}.")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise AssertionRefused("The client's JWK Set is too large.")
        except httpx.HTTPError as exc:
            raise AssertionRefused("The client's jwks_uri could not be fetched.") from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise AssertionRefused("The client's jwks_uri did not answer a JWK Set.") from exc
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise AssertionRefused("The client's jwks_uri did not answer a JWK Set.")
        # A published set may hold keys for other uses: those we cannot verify with are left out.
        return [key for key in keys[:MAX_KEYS] if _key_problem(key) is None]


# ---- verifying an assertion -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeySource:
    """What verifying a client's assertion needs of its row, read in a short transaction of its own."""

    id: uuid.UUID
    client_id: str
    tenant_id: uuid.UUID
    scopes: list[str]
    jwks: dict[str, Any] | None
    jwks_uri: str | None


async def _key_source(session: AsyncSession, client_id: str) -> _KeySource:
    client = await session.scalar(
        select(IntegrationClient)
        .join(Tenant, Tenant.id == IntegrationClient.tenant_id)
        .where(
            IntegrationClient.client_id == client_id,
            IntegrationClient.revoked_at.is_(None),
            Tenant.is_active.is_(True),
        )
    )
    if client is None or (client.jwks is None and client.jwks_uri is None):
        raise AssertionRefused("Client authentication failed.")
    return _KeySource(
        client.id, client.client_id, client.tenant_id, list(client.scopes), client.jwks, client.jwks_uri
    )


def _key_of(keys: list[dict[str, Any]], kid: str, alg: str) -> Any | None:
    """The verifying key named `kid` and fit for `alg`, or None."""
    for key in keys:
        if key.get("kid") != kid:
            continue
        if key.get("kty") != ALGORITHMS[alg] or key.get("alg", alg) != alg:
            raise AssertionRefused(f"The key {kid[:40]!r} is not a key for {alg}.")
        return jwt.PyJWK(key).key
    return None


async def _verifying_key(client: _KeySource, kid: str, alg: str, cache: JwksCache) -> Any:
    if client.jwks is not None:
        key = _key_of(client.jwks.get("keys", []), kid, alg)
    else:
        assert client.jwks_uri is not None
        key = _key_of(await cache.keys(client.jwks_uri), kid, alg)
        if key is None:  # perhaps rotated at the client since we fetched
            key = _key_of(await cache.keys(client.jwks_uri, refresh=True), kid, alg)
    if key is None:
        raise AssertionRefused(f"No key {kid[:40]!r} is registered for this client.")
    return key


def _unverified(assertion: str) -> tuple[str, str, str]:
    """(alg, kid, iss) of an assertion, before its signature is checked (to find the key)."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise AssertionRefused("client_assertion is not a JWT.") from exc
    alg, kid, iss = header.get("alg"), header.get("kid"), claims.get("iss")
    if alg not in ALGORITHMS:
        raise AssertionRefused("client_assertion must be signed RS384 or ES384.")
    if not isinstance(kid, str) or not kid:
        raise AssertionRefused("client_assertion's header needs the kid of its key.")
    if not isinstance(iss, str) or not iss:
        raise AssertionRefused("client_assertion needs iss (the client id).")
    return alg, kid, iss


async def authenticate_assertion(
    sessions: async_sessionmaker[AsyncSession],
    assertion: str,
    *,
    token_url: str,
    cache: JwksCache,
    leeway_seconds: int,
) -> ClientCaller:
    """The caller a client assertion authenticates (its `jti` recorded, so it is never accepted again);
    AssertionRefused says why not.

    No transaction (nor pooled connection) is held while a `jwks_uri` is fetched, which may take the
    whole fetch timeout: the client's key source is read in one short session, the key set fetched (or
    taken from the cache) with none open, and the `jti` recorded in a second short transaction."""
    alg, kid, client_id = _unverified(assertion)
    async with sessions() as session:
        client = await _key_source(session, client_id)
    key = await _verifying_key(client, kid, alg, cache)
    try:
        claims = jwt.decode(
            assertion,
            key=key,
            algorithms=[alg],
            audience=token_url,
            issuer=client.client_id,
            leeway=leeway_seconds,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AssertionRefused("client_assertion has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise AssertionRefused(f"client_assertion's aud must be the token URL, {token_url}.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AssertionRefused(f"client_assertion needs the claim {exc.claim}.") from exc
    except jwt.InvalidTokenError as exc:
        raise AssertionRefused("client_assertion's signature or claims are not valid.") from exc
    if claims["sub"] != client.client_id:
        raise AssertionRefused("client_assertion's sub must be the client id, as iss is.")
    now = datetime.now(UTC)
    expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
    if expires > now + timedelta(seconds=MAX_ASSERTION_SECONDS + leeway_seconds):
        raise AssertionRefused(
            f"client_assertion's exp must be at most {MAX_ASSERTION_SECONDS} seconds ahead."
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise AssertionRefused(
            f"client_assertion's jti must be a string of 1 to {MAX_JTI_LENGTH} characters."
        )
    async with sessions() as session, session.begin():
        await _record_jti(session, client.id, jti, expires + timedelta(seconds=leeway_seconds), now)
    return ClientCaller(
        client_id=client.client_id,
        secret_id=None,
        tenant_id=client.tenant_id,
        scopes=frozenset(Scope(s) for s in client.scopes if s in Scope.__members__.values()),
    )


async def _record_jti(
    session: AsyncSession, client: uuid.UUID, jti: str, expires: datetime, now: datetime
) -> None:
    """Record an accepted `jti` (refused if it is already there) and forget those that have expired."""
    await session.execute(
        delete(IntegrationClientAssertion).where(IntegrationClientAssertion.expires_at < now)
    )
    recorded = await session.scalar(
        insert(IntegrationClientAssertion)
        .values(integration_client_id=client, jti=jti, expires_at=expires)
        .on_conflict_do_nothing()
        .returning(IntegrationClientAssertion.jti)
    )
    if recorded is None:
        raise AssertionRefused("This client_assertion (its jti) has been used already.")


async def has_keys(session: AsyncSession, caller: ClientCaller) -> bool:
    """Whether a client still active still has keys registered (a key-authenticated token's check)."""
    found = await session.scalar(
        select(IntegrationClient.id).where(
            IntegrationClient.client_id == caller.client_id,
            IntegrationClient.tenant_id == caller.tenant_id,
            IntegrationClient.revoked_at.is_(None),
            (IntegrationClient.jwks.is_not(None)) | (IntegrationClient.jwks_uri.is_not(None)),
        )
    )
    return found is not None
