"""Bearer-token authentication (PyJWT) and role-based permissions."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

import jwt

from core.errors import Unauthorized
from core.settings import Settings


class Role(StrEnum):
    """What a caller is to the clinic."""

    ADMIN = "admin"
    COORDINATOR = "coordinator"
    PRACTITIONER = "practitioner"
    VIEWER = "viewer"
    OPERATOR = "operator"  # runs the Temporal side: may decode workflow payloads, reads no records


class Permission(StrEnum):
    """What a route needs. Roles grant permissions; routes never test roles directly."""

    READ = "read"
    WRITE = "write"  # create and update records
    MERGE = "merge"  # merge duplicate patients
    DELETE = "delete"  # hard deletes
    ADMIN = "admin"  # tenant-wide administration
    DECODE_PAYLOADS = "decode_payloads"  # the Temporal UI's codec server


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.COORDINATOR: frozenset({Permission.READ, Permission.WRITE, Permission.MERGE, Permission.DELETE}),
    Role.PRACTITIONER: frozenset({Permission.READ, Permission.WRITE}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.DECODE_PAYLOADS}),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who, for which tenant, with which roles."""

    sub: str
    tenant_id: uuid.UUID
    roles: frozenset[Role] = field(default_factory=frozenset)

    def can(self, permission: Permission) -> bool:
        """Whether any of the caller's roles grants `permission`."""
        return any(permission in ROLE_PERMISSIONS[role] for role in self.roles)


REQUIRED_CLAIMS = ["sub", "tenant_id", "roles", "exp", "iss", "aud"]
TIME_CLAIMS = ("exp", "iat", "nbf")
MAX_VERIFIED_TOKENS = 10_000


class TokenVerifier:
    """Checks bearer tokens with the one algorithm family this deployment is configured for."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Tokens already verified, until they expire: a client sends the same token on every request, and
        # checking its signature again each time was a tenth of a request's work. Bounded: cleared when full.
        self._verified: dict[str, tuple[Principal, float]] = {}

    @cached_property
    def _jwks_client(self) -> jwt.PyJWKClient | None:
        url = self.settings.jwt_jwks_url
        return jwt.PyJWKClient(url, cache_keys=True) if url else None

    def _key_for(self, token: str) -> Any:
        alg = self.settings.jwt_algorithm
        if alg.startswith("HS"):
            return self.settings.jwt_secret
        if self._jwks_client is not None:
            try:
                return self._jwks_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise Unauthorized("Could not find the token's signing key.") from exc
        return self.settings.jwt_public_key

    def verify(self, token: str) -> Principal:
        """Decode and validate `token`; any defect is 401 with a reason that reveals nothing."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]  # expired: decoding it again says so
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=[self.settings.jwt_algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token has expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("Invalid token.") from exc
        check_token_times(claims, max_lifetime_seconds=self.settings.jwt_max_lifetime_seconds)
        principal = _principal_from_claims(claims)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]) + self.settings.jwt_leeway_seconds)
        return principal


def check_token_times(claims: dict[str, Any], *, max_lifetime_seconds: int) -> None:
    """`exp`, `iat` and `nbf` are JSON numbers (RFC 7519's NumericDate: PyJWT takes a string of digits too),
    and the token lives no longer than `max_lifetime_seconds` from `iat` (from now without one)."""
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if name in claims and not _is_numeric_date(value):
            raise Unauthorized(f"Invalid token: `{name}` must be a number of seconds since the epoch.")
    start = claims["iat"] if "iat" in claims else time.time()
    if claims["exp"] - start > max_lifetime_seconds:
        raise Unauthorized(f"Invalid token: it lives longer than the {max_lifetime_seconds} seconds allowed.")


def _is_numeric_date(value: object) -> bool:
    # bool is an int to Python, and json.loads takes NaN and Infinity: neither is a date.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub, tenant, roles = claims.get("sub"), claims.get("tenant_id"), claims.get("roles")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("Invalid token.")
    try:
        tenant_id = uuid.UUID(str(tenant))
    except ValueError as exc:
        raise Unauthorized("Invalid token.") from exc
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not roles:
        raise Unauthorized("Invalid token.")
    try:
        parsed = frozenset(Role(r) for r in roles)
    except ValueError as exc:
        raise Unauthorized("Invalid token.") from exc
    return Principal(sub=sub, tenant_id=tenant_id, roles=parsed)


def issue_dev_token(
    settings: Settings,
    *,
    tenant_id: uuid.UUID,
    roles: list[Role],
    sub: str = "dev-user",
    ttl: timedelta | None = None,
) -> str:
    """A token signed with the configured HMAC secret, for development and tests."""
    if not settings.jwt_algorithm.startswith("HS"):
        raise ValueError(
            "development tokens need an HS* algorithm (the deployment verifies with a public key)"
        )
    lifetime = ttl or timedelta(minutes=settings.dev_token_ttl_minutes)
    if lifetime.total_seconds() > settings.jwt_max_lifetime_seconds:
        raise ValueError(
            f"a token may live {settings.jwt_max_lifetime_seconds} seconds at most "
            "(PRM_JWT_MAX_LIFETIME_SECONDS)"
        )
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "tenant_id": str(tenant_id),
        "roles": [r.value for r in roles],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)
