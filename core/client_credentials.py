"""Credentials of systems (EHR integrations): client secrets and the short-lived tokens they are traded for.

The shape is OAuth 2.0 client credentials as SMART Backend Services uses it: a client sends its id and
secret to `POST /oauth/token` and gets a JWT of a few minutes naming its tenant and `scope` (space-separated
scope names, e.g. `fhir hl7`, or SMART's `system/Patient.rs`: `core.smart_scopes`). A client registered with a
JWK Set may instead sign an assertion (SMART's `private_key_jwt`, `domain.integrations.keys`); its token
then names no secret. These tokens carry their own audience (`PRM_INTEGRATION_TOKEN_AUDIENCE`), so
the coordinator API's verifier refuses them and the integration endpoints refuse coordinator tokens.

Secrets are 256 random bits, so a plain SHA-256 is enough to store them (a slow password hash protects
guessable secrets; these are not guessable) and lets the token endpoint find a secret by its hash.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from core.auth import check_token_times
from core.errors import ServiceUnavailable, Unauthorized
from core.settings import Settings
from core.smart_scopes import SmartGrant, is_smart_scope, parse_smart_scope

CLIENT_ID_PREFIX = "prm_client_"
SECRET_PREFIX = "prm_secret_"  # noqa: S105 - a prefix, not a secret
SECRET_HINT_CHARS = 4  # the end of a secret, shown in lists so an operator can tell secrets apart
INTEGRATION_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "tenant_id", "scope", "exp", "iss", "aud"]  # `sid` when a secret authenticated


class Scope(StrEnum):
    """What an integration client may call."""

    FHIR = "fhir"  # /fhir/R4: read, search and transaction bundles
    HL7 = "hl7"  # HL7 v2 messages


def new_client_id() -> str:
    """A fresh public client id such as `prm_client_3q9...` (not a secret)."""
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(12)


def new_secret() -> str:
    """A fresh client secret (256 random bits); shown once, only its hash is stored."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest a secret is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_scopes(raw: str) -> frozenset[Scope]:
    """The scopes named in a space-separated `scope` string; ValueError names an unknown one."""
    found = set()
    for name in raw.split():
        try:
            found.add(Scope(name))
        except ValueError as exc:
            raise ValueError(f"unknown scope {name[:32]!r}") from exc
    return frozenset(found)


def format_scopes(
    scopes: frozenset[Scope] | set[Scope] | list[Scope], grants: frozenset[SmartGrant] | None = None
) -> str:
    """Scopes as the `scope` string of OAuth (sorted, space-separated). With SMART grants, `fhir` is left
    out: the grants say how much of it the token holds."""
    if grants is None:
        return " ".join(sorted(s.value for s in scopes))
    return " ".join(sorted([s.value for s in scopes if s != Scope.FHIR] + [g.scope for g in grants]))


def parse_token_scope(raw: str) -> tuple[frozenset[Scope], frozenset[SmartGrant] | None]:
    """Our scopes and the SMART grants a `scope` string names (grants None: `fhir` unrestricted, or no
    SMART scope at all). A SMART scope implies `fhir`. ValueError names what is refused."""
    scopes: set[Scope] = set()
    grants: set[SmartGrant] = set()
    for name in raw.split():
        if is_smart_scope(name):
            grants.add(parse_smart_scope(name))
        else:
            scopes |= parse_scopes(name)
    if not grants or Scope.FHIR in scopes:
        return frozenset(scopes), None
    return frozenset({*scopes, Scope.FHIR}), frozenset(grants)


@dataclass(frozen=True)
class ClientCaller:
    """An authenticated integration client: which client, with which secret (None: it signed an assertion
    with a registered key), for which tenant and scopes, and how far SMART scopes narrow `fhir`."""

    client_id: str
    secret_id: uuid.UUID | None
    tenant_id: uuid.UUID
    scopes: frozenset[Scope]
    grants: frozenset[SmartGrant] | None = None

    @property
    def sub(self) -> str:
        """How the audit trail names the caller."""
        return f"client:{self.client_id}"


def _signing_secret(settings: Settings) -> str:
    secret = settings.integration_signing_secret
    if secret is None:
        raise ServiceUnavailable(
            "Integration tokens are not configured on this server (set PRM_INTEGRATION_TOKEN_SECRET)."
        )
    return secret


def issue_client_token(settings: Settings, caller: ClientCaller) -> tuple[str, int]:
    """A signed token for `caller` and its lifetime in seconds."""
    now = datetime.now(UTC)
    ttl = settings.integration_token_ttl_seconds
    claims = {
        "sub": caller.client_id,
        "tenant_id": str(caller.tenant_id),
        "scope": format_scopes(caller.scopes, caller.grants),
        "iss": settings.jwt_issuer,
        "aud": settings.integration_token_audience,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
    }
    if caller.secret_id is not None:
        claims["sid"] = str(caller.secret_id)
    return jwt.encode(claims, _signing_secret(settings), algorithm=INTEGRATION_ALGORITHM), ttl


def verify_client_token(settings: Settings, token: str) -> ClientCaller:
    """Decode and check an integration token; any defect is 401 with a reason that reveals nothing."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=_signing_secret(settings),
            algorithms=[INTEGRATION_ALGORITHM],
            audience=settings.integration_token_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("Invalid token.") from exc
    check_token_times(claims, max_lifetime_seconds=settings.jwt_max_lifetime_seconds)
    try:
        scopes, grants = parse_token_scope(str(claims["scope"]))
        return ClientCaller(
            client_id=str(claims["sub"]),
            secret_id=uuid.UUID(str(claims["sid"])) if "sid" in claims else None,
            tenant_id=uuid.UUID(str(claims["tenant_id"])),
            scopes=scopes,
            grants=grants,
        )
    except ValueError as exc:
        raise Unauthorized("Invalid token.") from exc
