"""Integration clients API (`/integration-clients`): the systems (EHRs) that call the FHIR and HL7
endpoints, and their secrets, managed by the tenant's administrators (as `prm integration` does).

Every create, rotation and revocation is in the tenant's audit trail, committed with the change.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from api.audit import actor_of
from api.content_rules import rules
from api.deps import CanAdminister, CurrentPrincipal, SessionDep
from api.openapi import AUTHENTICATED, errors
from core.auth import Principal
from domain.integrations import service
from domain.integrations.schemas import (
    ClientId,
    FeedSettings,
    FeedSettingsResponse,
    IntegrationClientCreate,
    IntegrationClientKeys,
    IntegrationClientResponse,
    IssuedSecretResponse,
    SecretResponse,
)

router = APIRouter(prefix="/integration-clients", tags=["integration clients"], responses=AUTHENTICATED)
ClientIdPath = Annotated[ClientId, Path(description="The client's id (`prm_client_...`)")]
NOT_FOUND = errors(not_found="No such integration client (or secret) in your tenant")


def _issued(issued: service.IssuedSecret) -> IssuedSecretResponse:
    return IssuedSecretResponse(
        client_id=issued.client.client_id,
        client_secret=issued.secret,
        secret_id=issued.secret_id,
        scopes=issued.client.scopes,  # type: ignore[arg-type]
    )


def _response(summary: service.ClientSummary) -> IntegrationClientResponse:
    client = summary.client
    return IntegrationClientResponse(
        client_id=client.client_id,
        name=client.name,
        scopes=client.scopes,  # type: ignore[arg-type]
        created_at=client.created_at,
        revoked_at=client.revoked_at,
        jwks=client.jwks,
        jwks_uri=client.jwks_uri,
        secrets=[
            SecretResponse(secret_id=s.id, ends_with=s.hint, created_at=s.created_at, revoked_at=s.revoked_at)
            for s in summary.secrets
        ],
        hl7_feed=FeedSettingsResponse(
            timezone=client.timezone,
            ignore_unsupported_messages=client.ignore_unsupported_messages,
            code_maps=client.code_maps or {},
        ),
    )


async def _summary(session: SessionDep, principal: Principal, client_id: str) -> IntegrationClientResponse:
    found = [
        s for s in await service.list_clients(session, principal.tenant_id) if s.client.client_id == client_id
    ]
    return _response(found[0])


# What a SMART Backend Services client's keys are checked for when registered (`domain.integrations.keys`).
KEY_RULES = (
    "`jwks` is a JWK Set of public keys (RSA of 2048 bits or more, or EC P-384), each with its own `kid`, "
    "at most 64 KiB; no private or symmetric key material.",
    "`jwks_uri` is an absolute https URL (http only on loopback) of at most 2000 characters, without "
    "credentials; `jwks` and `jwks_uri` are not both given.",
)


@router.post(
    "",
    response_model=IssuedSecretResponse,
    status_code=201,
    dependencies=[CanAdminister],
    openapi_extra=rules(*KEY_RULES),
)
async def create_integration_client(
    body: IntegrationClientCreate, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> IssuedSecretResponse:
    """Register a system (an EHR) of your tenant with the scopes it may call (`fhir`, `hl7`), and its first
    secret. The secret is in this answer only; the EHR trades it at `POST /oauth/token` for a short-lived
    token. With `jwks` or `jwks_uri` (SMART Backend Services), the client gets no secret: it signs an
    assertion with its private key instead. `timezone`, `code_maps` and `ignore_unsupported_messages` say how
    its HL7 v2 messages are read. Administrators only."""
    issued = await service.create_client(
        session,
        tenant_id=principal.tenant_id,
        name=body.name,
        scopes=set(body.scopes),
        actor=actor_of(request, principal),
        keys=service.ClientKeys(jwks=body.jwks, jwks_uri=body.jwks_uri),
        feed=body,
        guard=request.app.state.jwks_cache.guard,
    )
    return _issued(issued)


@router.patch(
    "/{client_id}",
    response_model=IntegrationClientResponse,
    dependencies=[CanAdminister],
    responses=NOT_FOUND,
)
async def configure_integration_client_feed(
    client_id: ClientIdPath,
    body: FeedSettings,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> IntegrationClientResponse:
    """Change how a client's HL7 v2 messages are read: `timezone` (the IANA zone of its times without an
    offset; null for your tenant's), `code_maps` (its local language, sex and appointment type codes mapped
    onto ours; each kind given replaces that kind's map, an empty map removes it) and
    `ignore_unsupported_messages` (message types this service does not use answered AA and ignored, instead of
    AR). Fields left out stay as they are. Administrators only."""
    await service.configure_feed(
        session,
        tenant_id=principal.tenant_id,
        client_id=client_id,
        feed=body,
        actor=actor_of(request, principal),
    )
    return await _summary(session, principal, client_id)


@router.put(
    "/{client_id}/keys",
    response_model=IntegrationClientResponse,
    dependencies=[CanAdminister],
    openapi_extra=rules(*KEY_RULES),
    responses=errors(not_found="No such integration client in your tenant", conflict="The client is revoked"),
)
async def set_integration_client_keys(
    client_id: ClientIdPath,
    body: IntegrationClientKeys,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> IntegrationClientResponse:
    """Replace a client's public keys (SMART Backend Services): a JWK Set, or the URL serving one. To
    rotate, register a set with both keys, move the client to the new key, then one without the old.
    Neither field removes the keys. Administrators only."""
    await service.set_keys(
        session,
        tenant_id=principal.tenant_id,
        client_id=client_id,
        keys=service.ClientKeys(jwks=body.jwks, jwks_uri=body.jwks_uri),
        actor=actor_of(request, principal),
        guard=request.app.state.jwks_cache.guard,
    )
    return await _summary(session, principal, client_id)


@router.get("", response_model=list[IntegrationClientResponse], dependencies=[CanAdminister])
async def list_integration_clients(
    session: SessionDep, principal: CurrentPrincipal
) -> list[IntegrationClientResponse]:
    """Your tenant's integration clients, oldest first, with their secrets' ids and last characters (never
    the secrets). Administrators only."""
    return [_response(s) for s in await service.list_clients(session, principal.tenant_id)]


@router.post(
    "/{client_id}/secrets",
    response_model=IssuedSecretResponse,
    status_code=201,
    dependencies=[CanAdminister],
    responses=errors(not_found="No such integration client in your tenant", conflict="The client is revoked"),
)
async def rotate_integration_client_secret(
    client_id: ClientIdPath, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> IssuedSecretResponse:
    """Add a new secret to a client (rotation without downtime): its other secrets keep working until you
    revoke them. The new secret is in this answer only. Administrators only."""
    issued = await service.rotate_secret(
        session, tenant_id=principal.tenant_id, client_id=client_id, actor=actor_of(request, principal)
    )
    return _issued(issued)


@router.delete(
    "/{client_id}/secrets/{secret_id}",
    response_model=IntegrationClientResponse,
    dependencies=[CanAdminister],
    responses=NOT_FOUND,
)
async def revoke_integration_client_secret(
    client_id: ClientIdPath,
    secret_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> IntegrationClientResponse:
    """Revoke one secret of a client: tokens issued with it stop working at once. Administrators only."""
    await service.revoke(
        session,
        tenant_id=principal.tenant_id,
        client_id=client_id,
        secret_id=secret_id,
        actor=actor_of(request, principal),
    )
    return await _summary(session, principal, client_id)


@router.delete(
    "/{client_id}",
    response_model=IntegrationClientResponse,
    dependencies=[CanAdminister],
    responses=NOT_FOUND,
)
async def revoke_integration_client(
    client_id: ClientIdPath, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> IntegrationClientResponse:
    """Revoke a client and all its secrets: its tokens stop working at once. The record stays (revoked), for
    the audit trail. Administrators only."""
    await service.revoke(
        session, tenant_id=principal.tenant_id, client_id=client_id, actor=actor_of(request, principal)
    )
    return await _summary(session, principal, client_id)
