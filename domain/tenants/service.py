"""Creating and finding tenants (system-level operations, outside any tenant's scope)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantCreate, TenantSettings


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


def settings_of(tenant: Tenant) -> TenantSettings:
    """The tenant's settings with defaults filled in."""
    return TenantSettings.model_validate(tenant.settings or {})
