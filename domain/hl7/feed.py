"""How one integration client's HL7 v2 feed is read: the zone of its times without an offset, its local codes
mapped onto ours, and whether message types this receiver does not use are ignored rather than refused.

Set per client through `PATCH /integration-clients/{client_id}` and `prm integration configure`
(`domain.integrations`); read once per message (`feed_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.integrations.models import IntegrationClient
from domain.integrations.schemas import CodeKind, local_code
from domain.tenants.models import Tenant

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Feed:
    """One client's feed settings (the defaults: UTC, no code maps, unsupported messages refused)."""

    zone: tzinfo = UTC_ZONE
    code_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ignore_unsupported_messages: bool = False

    def mapped(self, kind: CodeKind, *codes: str) -> str | None:
        """What the first of `codes` that the feed's `kind` map holds maps to (codes compared upper-cased)."""
        codes_of_kind = self.code_maps.get(kind.value) or {}
        for code in codes:
            if code and (found := codes_of_kind.get(local_code(code))) is not None:
                return found
        return None


def _zone(name: str | None) -> tzinfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):  # validated when set: a zone since removed from tzdata
        return None


async def feed_of(session: AsyncSession, client_id: str) -> Feed:
    """The feed settings of the session's tenant's client `client_id` (its zone: the tenant's by default)."""
    row = (
        await session.execute(
            select(
                IntegrationClient.timezone,
                IntegrationClient.code_maps,
                IntegrationClient.ignore_unsupported_messages,
                Tenant.timezone.label("tenant_timezone"),
            )
            .join(Tenant, Tenant.id == IntegrationClient.tenant_id)
            .where(
                IntegrationClient.client_id == client_id,
                IntegrationClient.tenant_id == session.info["tenant_id"],
            )
        )
    ).one_or_none()
    if row is None:
        return Feed()
    return Feed(
        zone=_zone(row.timezone) or _zone(row.tenant_timezone) or UTC_ZONE,
        code_maps=row.code_maps or {},
        ignore_unsupported_messages=row.ignore_unsupported_messages,
    )
