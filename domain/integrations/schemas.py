"""Integration client shapes, as the admin API takes and answers them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

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


class IssuedSecretResponse(ResponseModel):
    """A client's new secret: shown only in this answer (only its hash is stored)."""

    client_id: str
    client_secret: str = Field(description="Send it to `POST /oauth/token`; it cannot be shown again")
    secret_id: uuid.UUID
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
