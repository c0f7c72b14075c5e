"""Audit record queries. The trail is not a tenant-scoped model (it outlives a tenant's data), so the
tenant filter is this repository's base statement: every query it builds sees one tenant's records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
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
