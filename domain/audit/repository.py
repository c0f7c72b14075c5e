"""Audit record queries. The trail is not a tenant-scoped model (it outlives a tenant's data), so the
tenant filter is this repository's base statement: every query it builds sees one tenant's records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import AuditOutcome, AuditRecord
from core.pagination import PageParams, paginate


class AuditRepository:
    """One tenant's audit records."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def base(self) -> Select[Any]:
        """SELECT over the tenant's records."""
        return select(AuditRecord).where(AuditRecord.tenant_id == self.tenant_id)

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        user_sub: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Select[Any]:
        """The records matching every filter given, newest first (`since` inclusive, `until` exclusive)."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(AuditRecord.patient_id == patient_id)
        if user_sub is not None:
            stmt = stmt.where(AuditRecord.user_sub == user_sub)
        if action is not None:
            stmt = stmt.where(AuditRecord.action == action)
        if outcome is not None:
            stmt = stmt.where(AuditRecord.outcome == outcome.value)
        if since is not None:
            stmt = stmt.where(AuditRecord.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(AuditRecord.occurred_at < until)
        return stmt.order_by(AuditRecord.seq.desc())

    async def page(self, stmt: Select[Any], params: PageParams) -> tuple[list[AuditRecord], int]:
        """One page of `stmt` and the total count."""
        return await paginate(self.session, stmt, params)

    async def in_chain_order(self, *, after_seq: int, limit: int) -> list[AuditRecord]:
        """The next `limit` records after `after_seq`, oldest first."""
        stmt = self.base().where(AuditRecord.seq > after_seq).order_by(AuditRecord.seq).limit(limit)
        return list(await self.session.scalars(stmt))


async def tenants_with_records(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant that has an audit trail."""
    stmt = select(AuditRecord.tenant_id).distinct().order_by(AuditRecord.tenant_id)
    return list(await session.scalars(stmt))


@dataclass(frozen=True)
class ChainHead:
    """The last record of a tenant's trail."""

    tenant_id: uuid.UUID
    seq: int
    hash: str


# One index probe per tenant (uq_audit_records_tenant_id_seq, backwards), not a scan of the whole trail.
# Tenants that were deleted keep their trail but add nothing to it: their last anchor stays their head.
CHAIN_HEADS = text(
    """
    SELECT t.id AS tenant_id, h.seq, h.hash FROM tenants t
    CROSS JOIN LATERAL (
        SELECT a.seq, a.hash FROM audit_records a WHERE a.tenant_id = t.id ORDER BY a.seq DESC LIMIT 1
    ) h
    ORDER BY t.id
    """
)


async def chain_heads(session: AsyncSession) -> list[ChainHead]:
    """The head of every tenant's trail (tenants with no record have none)."""
    rows = await session.execute(CHAIN_HEADS)
    return [ChainHead(row.tenant_id, row.seq, row.hash) for row in rows]
