"""Integration client shapes, as the admin API takes and answers them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from core.client_credentials import Scope
from domain.schemas import RequestModel, ResponseModel

ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^prm_client_[A-Za-z0-9_-]+$")]


class IntegrationClientCreate(RequestModel):
    """Body of `POST /integration-clients`: what the system is, and what it may call."""

    name: str = Field(min_length=1, max_length=200, description="What the client is, e.g. `Epic production`")
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.FHIR], min_length=1, max_length=len(Scope), description="fhir, hl7"
    )

    # -- SMART Backend Services (private_key_jwt): the client's public keys --
    jwks: dict[str, Any] | None = Field(
        default=None,
        description='The client\'s public keys, a JWK Set (`{"keys": [...]}`, RSA for RS384 or EC P-384 for '
        "ES384, each with a `kid`). A client registered with keys signs assertions instead of sending a "
        "secret, and gets no secret.",
    )
    jwks_uri: str | None = Field(
        default=None,
        max_length=2000,
        description="Instead of `jwks`: the https URL the client publishes its JWK Set at (fetched and "
        "cached).",
    )


class IntegrationClientKeys(RequestModel):
    """Body of `PUT /integration-clients/{client_id}/keys`: the client's public keys, replacing those it
    had (neither field: the client no longer authenticates with keys)."""

    jwks: dict[str, Any] | None = Field(default=None, description="A JWK Set of public keys")
    jwks_uri: str | None = Field(default=None, max_length=2000, description="Or the https URL of one")


class IssuedSecretResponse(ResponseModel):
    """A client's new secret: shown only in this answer (only its hash is stored)."""

    client_id: str
    client_secret: str | None = Field(
        description="Send it to `POST /oauth/token`; it cannot be shown again (none for a client registered "
        "with keys)"
    )
    secret_id: uuid.UUID | None
    scopes: list[Scope]


class SecretResponse(ResponseModel):
    """One of a client's secrets, never the secret itself."""

    secret_id: uuid.UUID
    ends_with: str = Field(description="The secret's last characters, to tell secrets apart")
    created_at: datetime
    revoked_at: datetime | None


class IntegrationClientResponse(ResponseModel):
    """An integration client and its secrets."""

    client_id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None
    secrets: list[SecretResponse]
    # -- SMART Backend Services --
    jwks: dict[str, Any] | None = Field(default=None, description="The public keys registered, if any")
    jwks_uri: str | None = Field(default=None, description="Where the client's keys are fetched, if so")
