"""Creating and finding tenants (system-level operations, outside any tenant's scope)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import languages
from core.audit import Actor, append
from core.database import transaction_held
from core.errors import NotFound, Unprocessable
from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantCreate, TenantSettings

RESOURCE_TYPE = "tenants"


async def create_tenant(session: AsyncSession, data: TenantCreate) -> Tenant:
    """Add a tenant; the caller commits."""
    tenant = Tenant(name=data.name, timezone=data.timezone, settings=data.settings.model_dump(mode="json"))
    session.add(tenant)
    await session.flush()
    return tenant


async def get_active_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    """The tenant if it exists and is active."""
    tenant = await session.get(Tenant, tenant_id)
    return tenant if tenant is not None and tenant.is_active else None


_HELD_KEY = "tenants_held"


async def tenant_of(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    """The tenant, read once per transaction (`transaction_held`): the later reads of one unit of work (a
    message's language, its variables, its send policy) find it there, where the identity map, which holds
    only weak references, would lose it as soon as the first caller let go."""
    held: dict[uuid.UUID, Tenant | None] = await transaction_held(session, _HELD_KEY)
    if tenant_id not in held:
        held[tenant_id] = await session.get(Tenant, tenant_id)
    return held[tenant_id]


def settings_of(tenant: Tenant) -> TenantSettings:
    """The tenant's settings with defaults filled in."""
    return TenantSettings.model_validate(tenant.settings or {})


async def set_default_language(
    session: AsyncSession, tenant_id: uuid.UUID, language: str, *, by: Actor, loc: tuple[str, ...]
) -> Tenant:
    """Change the tenant's default message language (normalised; 422 at `loc` when it is not a language
    tag, 404 for no such tenant) and append the change to its audit trail, in the caller's transaction.

    One UPDATE merges the key into the stored settings, so a concurrent change to another setting is kept.
    (The row's trigger tells every API process's active-tenant cache, which holds no settings anyway.)"""
    try:
        tag = languages.normalise(language)
    except ValueError as exc:
        raise Unprocessable(f"default_language {exc}.", loc=loc) from exc
    changed = await session.scalar(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(settings=Tenant.settings.op("||")(func.jsonb_build_object("default_language", tag)))
        .returning(Tenant.id)
        .execution_options(synchronize_session=False)
    )
    if changed is None:
        raise NotFound("Tenant not found.")
    await append(
        session,
        [
            by.event(
                tenant_id=tenant_id,
                action=f"{RESOURCE_TYPE}.set_default_language",
                resource_type=RESOURCE_TYPE,
                resource_id=tenant_id,
            )
        ],
    )
    tenant = await session.get(Tenant, tenant_id, populate_existing=True)
    assert tenant is not None
    return tenant
