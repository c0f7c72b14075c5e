"""How one integration client's HL7 v2 feed is read: the zone of its times without an offset, its local codes
mapped onto ours, and whether message types this receiver does not use are ignored rather than refused.

Set per client through `PATCH /integration-clients/{client_id}` and `prm integration configure`
(`domain.integrations`); read once per message (`feed_of`). How large a message any feed may send
(`Limits`) is the deployment's, from its settings (`PRM_HL7_MAX_*`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from domain.integrations.models import IntegrationClient
from domain.integrations.schemas import CodeKind, local_code
from domain.tenants.models import Tenant

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Limits:
    """How large a message is read: checked in one linear scan of its text before python-hl7 parses it (which
    builds an object for each delimiter, some 25 µs apiece), so a hostile message is refused cheaply. The
    defaults are the settings' (`core.settings`: `PRM_HL7_MAX_SEGMENTS`, ...)."""

    message_bytes: int = 1024 * 1024
    segments: int = 1000  # an ADT with its OBX, NK1, AL1, DG1, PR1 stays far below
    repetitions: int = 100  # of one field (identifiers, phones, names)
    delimiters: int = (
        10_000  # fields, components, repetitions, subcomponents: a large real ADT holds a few 1000
    )
    escapes: int = 2_000  # escape sequences (`\X0D\`, `\T\` ...): each is unescaped when its field is read
    header_delimiters: int = 500  # MSH has 21 fields of a few components each (not a setting: HL7's shape)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits the deployment's settings give."""
        return cls(
            message_bytes=settings.hl7_max_message_bytes,
            segments=settings.hl7_max_segments,
            repetitions=settings.hl7_max_repetitions,
            delimiters=settings.hl7_max_delimiters,
            escapes=settings.hl7_max_escapes,
        )


@dataclass(frozen=True)
class Feed:
    """One client's feed settings (the defaults: UTC, no code maps, unsupported messages refused), and the
    deployment's limits on a message's size."""

    zone: tzinfo = UTC_ZONE
    code_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ignore_unsupported_messages: bool = False
    limits: Limits = Limits()

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


async def feed_of(session: AsyncSession, client_id: str, limits: Limits | None = None) -> Feed:
    """The feed settings of the session's tenant's client `client_id` (its zone: the tenant's by default),
    with the deployment's `limits`."""
    limits = limits or Limits()
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
        return Feed(limits=limits)
    return Feed(
        zone=_zone(row.timezone) or _zone(row.tenant_timezone) or UTC_ZONE,
        code_maps=row.code_maps or {},
        ignore_unsupported_messages=row.ignore_unsupported_messages,
        limits=limits,
    )
