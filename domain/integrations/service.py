"""Managing integration clients (create, rotate, revoke, list) and authenticating them.

Every create, rotation and revocation is appended to the tenant's audit trail in the same transaction, so
there is no change of credentials without its record. Secrets are returned once, when made; only their
hashes are stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, append
from core.client_credentials import (
    SECRET_HINT_CHARS,
    ClientCaller,
    Scope,
    hash_secret,
    new_client_id,
    new_secret,
)
from core.errors import Conflict, NotFound, Unprocessable
from domain.integrations.keys import JwksUriGuard, check_jwks, has_keys
from domain.integrations.models import IntegrationClient, IntegrationClientSecret
from domain.integrations.schemas import FeedSettings
from domain.tenants.models import Tenant

RESOURCE_TYPE = "integration_clients"
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class IssuedSecret:
    """A client and a secret just made for it; `secret` is the only time the plain secret exists. A client
    registered with keys (SMART Backend Services) gets no secret."""

    client: IntegrationClient
    secret_id: uuid.UUID | None
    secret: str | None


@dataclass(frozen=True)
class SecretSummary:
    """A secret as an operator sees it: never the secret, only its last characters."""

    id: uuid.UUID
    hint: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class ClientSummary:
    """A client with its secrets."""

    client: IntegrationClient
    secrets: list[SecretSummary] = field(default_factory=list)


async def _audit(session: AsyncSession, actor: Actor, client: IntegrationClient, action: str) -> None:
    await append(
        session,
        [
            actor.event(
                tenant_id=client.tenant_id,
                action=f"{RESOURCE_TYPE}.{action}",
                resource_type=RESOURCE_TYPE,
                resource_id=client.id,
            )
        ],
    )


def _add_secret(session: AsyncSession, client: IntegrationClient) -> tuple[uuid.UUID, str]:
    secret = new_secret()
    row = IntegrationClientSecret(
        id=uuid.uuid4(),
        integration_client_id=client.id,
        secret_hash=hash_secret(secret),
        hint=secret[-SECRET_HINT_CHARS:],
    )
    session.add(row)
    return row.id, secret


async def _client(session: AsyncSession, tenant_id: uuid.UUID, client_id: str) -> IntegrationClient:
    client = await session.scalar(
        select(IntegrationClient)
        .where(IntegrationClient.tenant_id == tenant_id, IntegrationClient.client_id == client_id)
        .with_for_update()
    )
    if client is None:
        raise NotFound("Integration client not found.")
    return client


@dataclass(frozen=True)
class ClientKeys:
    """Where a client's public keys are (SMART Backend Services): a JWK Set, or the URL serving one."""

    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None

    async def checked(self, guard: JwksUriGuard) -> ClientKeys:
        """The keys to store, validated (one source, public keys only, algorithms we verify, a `jwks_uri`
        that `guard` lets this server fetch)."""
        if self.jwks is not None and self.jwks_uri is not None:
            raise Unprocessable("Give the client's keys one way: jwks or jwks_uri, not both.")
        return ClientKeys(
            jwks=check_jwks(self.jwks) if self.jwks is not None else None,
            jwks_uri=await guard.registrable(self.jwks_uri) if self.jwks_uri is not None else None,
        )

    @property
    def given(self) -> bool:
        """Whether any key source is named."""
        return self.jwks is not None or self.jwks_uri is not None


async def create_client(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    name: str,
    scopes: set[Scope],
    actor: Actor,
    keys: ClientKeys | None = None,
    feed: FeedSettings | None = None,
    guard: JwksUriGuard | None = None,
) -> IssuedSecret:
    """Register a client of `tenant_id` with `scopes` and its first secret, or (with `keys`) with the public
    keys it signs its assertions with and no secret; with `feed`, how its HL7 v2 messages are read. A
    `jwks_uri` must pass `guard` (by default: https to a public address)."""
    keys = await keys.checked(guard or JwksUriGuard()) if keys is not None and keys.given else None
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise Unprocessable(f"The client's name must be 1 to {MAX_NAME_LENGTH} characters.")
    if not scopes:
        raise Unprocessable("A client needs at least one scope (fhir, hl7).")
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None or not tenant.is_active:
        raise NotFound("No active tenant with this id.")
    client = IntegrationClient(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        client_id=new_client_id(),
        name=name,
        scopes=sorted(s.value for s in scopes),
        jwks=keys.jwks if keys else None,
        jwks_uri=keys.jwks_uri if keys else None,
        code_maps={},
        ignore_unsupported_messages=False,
    )
    if feed is not None:
        _apply_feed(client, feed)
    session.add(client)
    await session.flush()
    if keys is not None:
        await _audit(session, actor, client, "create")
        return IssuedSecret(client=client, secret_id=None, secret=None)
    secret_id, secret = _add_secret(session, client)
    await session.flush()
    await _audit(session, actor, client, "create")
    return IssuedSecret(client=client, secret_id=secret_id, secret=secret)


# ---- HL7 v2 feed settings ----------------------------------------------------------------------------------


def _apply_feed(client: IntegrationClient, feed: FeedSettings) -> None:
    """Set what `feed` gives (a field left out stays; `timezone: null` goes back to the tenant's zone)."""
    given = feed.model_fields_set
    if "timezone" in given:
        client.timezone = feed.timezone
    if "ignore_unsupported_messages" in given and feed.ignore_unsupported_messages is not None:
        client.ignore_unsupported_messages = feed.ignore_unsupported_messages
    if "code_maps" in given and feed.code_maps is not None:
        maps = dict(client.code_maps or {})
        for kind, codes in feed.code_maps.model_dump(exclude_unset=True).items():
            if codes:
                maps[kind] = codes
            else:  # an empty (or null) map removes the kind's
                maps.pop(kind, None)
        client.code_maps = maps


async def configure_feed(
    session: AsyncSession, *, tenant_id: uuid.UUID, client_id: str, feed: FeedSettings, actor: Actor
) -> IntegrationClient:
    """Change how the client's HL7 v2 messages are read (its zone, its code maps, unsupported messages)."""
    client = await _client(session, tenant_id, client_id)
    _apply_feed(client, feed)
    await session.flush()
    await _audit(session, actor, client, "configure")
    return client


# ---- end of HL7 v2 feed settings ---------------------------------------------------------------------------


async def set_keys(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    client_id: str,
    keys: ClientKeys,
    actor: Actor,
    guard: JwksUriGuard | None = None,
) -> IntegrationClient:
    """Replace a client's public keys (a key rotation: register the set holding old and new keys, move the
    client to the new key, then register the set without the old one), or remove them (no source given)."""
    checked = await keys.checked(guard or JwksUriGuard())
    client = await _client(session, tenant_id, client_id)
    if client.revoked_at is not None:
        raise Conflict("This integration client is revoked.")
    client.jwks, client.jwks_uri = checked.jwks, checked.jwks_uri
    await session.flush()
    await _audit(session, actor, client, "set_keys")
    return client


async def rotate_secret(
    session: AsyncSession, *, tenant_id: uuid.UUID, client_id: str, actor: Actor
) -> IssuedSecret:
    """Add a new secret to the client; its other secrets keep working until they are revoked."""
    client = await _client(session, tenant_id, client_id)
    if client.revoked_at is not None:
        raise Conflict("This integration client is revoked.")
    secret_id, secret = _add_secret(session, client)
    await session.flush()
    await _audit(session, actor, client, "rotate")
    return IssuedSecret(client=client, secret_id=secret_id, secret=secret)


async def revoke(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    client_id: str,
    actor: Actor,
    secret_id: uuid.UUID | None = None,
) -> IntegrationClient:
    """Revoke one secret of the client, or (no `secret_id`) the client itself. Tokens already issued stop
    working at once: every request checks its client and secret are still active."""
    client = await _client(session, tenant_id, client_id)
    now = datetime.now(UTC)
    if secret_id is None:
        if client.revoked_at is None:
            client.revoked_at = now
        await session.flush()
        await _audit(session, actor, client, "revoke")
        return client
    secret = await session.scalar(
        select(IntegrationClientSecret)
        .where(
            IntegrationClientSecret.id == secret_id,
            IntegrationClientSecret.integration_client_id == client.id,
        )
        .with_for_update()
    )
    if secret is None:
        raise NotFound("This client has no such secret.")
    if secret.revoked_at is None:
        secret.revoked_at = now
    await session.flush()
    await _audit(session, actor, client, "revoke_secret")
    return client


async def list_clients(session: AsyncSession, tenant_id: uuid.UUID) -> list[ClientSummary]:
    """The tenant's clients, oldest first, each with its secrets (hints only)."""
    clients = list(
        (
            await session.scalars(
                select(IntegrationClient)
                .where(IntegrationClient.tenant_id == tenant_id)
                .order_by(IntegrationClient.created_at, IntegrationClient.id)
            )
        ).all()
    )
    if not clients:
        return []
    secrets = (
        await session.scalars(
            select(IntegrationClientSecret)
            .where(IntegrationClientSecret.integration_client_id.in_([c.id for c in clients]))
            .order_by(IntegrationClientSecret.created_at, IntegrationClientSecret.id)
        )
    ).all()
    by_client: dict[uuid.UUID, list[SecretSummary]] = {c.id: [] for c in clients}
    for s in secrets:
        by_client[s.integration_client_id].append(SecretSummary(s.id, s.hint, s.created_at, s.revoked_at))
    return [ClientSummary(client=c, secrets=by_client[c.id]) for c in clients]


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> ClientCaller | None:
    """The caller a client id and secret stand for, or None when they do not match an active client and
    secret of an active tenant (which of these failed is not told: no oracle for guessing)."""
    row = (
        await session.execute(
            select(IntegrationClient, IntegrationClientSecret)
            .join(
                IntegrationClientSecret, IntegrationClientSecret.integration_client_id == IntegrationClient.id
            )
            .join(Tenant, Tenant.id == IntegrationClient.tenant_id)
            .where(
                IntegrationClientSecret.secret_hash == hash_secret(secret),
                IntegrationClient.client_id == client_id,
                IntegrationClient.revoked_at.is_(None),
                IntegrationClientSecret.revoked_at.is_(None),
                Tenant.is_active.is_(True),
            )
        )
    ).first()
    if row is None:
        return None
    client, secret_row = row
    return ClientCaller(
        client_id=client.client_id,
        secret_id=secret_row.id,
        tenant_id=client.tenant_id,
        scopes=frozenset(Scope(s) for s in client.scopes if s in Scope.__members__.values()),
    )


async def is_active(session: AsyncSession, caller: ClientCaller) -> bool:
    """Whether the client and the secret a token was issued for are both still active (for a token an
    assertion was traded for: the client, and that it still has keys registered)."""
    if caller.secret_id is None:
        return await has_keys(session, caller)
    found = await session.scalar(
        select(IntegrationClientSecret.id)
        .join(IntegrationClient, IntegrationClientSecret.integration_client_id == IntegrationClient.id)
        .where(
            IntegrationClientSecret.id == caller.secret_id,
            IntegrationClient.client_id == caller.client_id,
            IntegrationClient.tenant_id == caller.tenant_id,
            IntegrationClient.revoked_at.is_(None),
            IntegrationClientSecret.revoked_at.is_(None),
        )
    )
    return found is not None
