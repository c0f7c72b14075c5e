"""Your tenant (`/tenant`): what it is, and the settings its administrators change through the API (today
its default message language; `prm tenant set-language` does the same from the command line)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.audit import actor_of
from api.deps import CanAdminister, CanRead, CurrentPrincipal, SessionDep
from api.openapi import AUTHENTICATED, errors
from core.errors import NotFound, Unprocessable
from domain.schemas import changes
from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantResponse, TenantUpdate
from domain.tenants.service import set_default_language, settings_of

router = APIRouter(prefix="/tenant", tags=["tenant"], responses=AUTHENTICATED)


def _response(tenant: Tenant) -> TenantResponse:
    return TenantResponse(
        id=tenant.id,
        name=tenant.name,
        timezone=tenant.timezone,
        default_language=settings_of(tenant).default_language,
    )


@router.get("", response_model=TenantResponse, dependencies=[CanRead])
async def get_tenant(session: SessionDep, principal: CurrentPrincipal) -> TenantResponse:
    """Your tenant: its name, time zone and default message language."""
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:  # the token's tenant is checked on every request; gone only in a race
        raise NotFound("Tenant not found.")
    return _response(tenant)


@router.patch(
    "",
    response_model=TenantResponse,
    dependencies=[CanAdminister],
    responses=errors(unprocessable="`default_language` is not a language tag"),
)
async def update_tenant(
    body: TenantUpdate, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> TenantResponse:
    """Change your tenant's default message language: the language a message falls back to when the
    patient's preferred language has no text (then English). Takes effect for the next message rendered;
    messages already recorded keep their text. Administrators only; every change is recorded in the audit
    trail, committed with it."""
    fields = changes(body)
    if "default_language" in fields:
        if body.default_language is None:
            raise Unprocessable("default_language cannot be null.", loc=("body", "default_language"))
        await set_default_language(
            session,
            principal.tenant_id,
            body.default_language,
            by=actor_of(request, principal),
            loc=("body", "default_language"),
        )
    return await get_tenant(session, principal)
