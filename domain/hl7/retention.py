"""How long the records of HL7 v2 messages are kept (`PRM_HL7_RETENTION_DAYS`), and the worker's purge.

A record (control id, type, digest, ACK) is what lets a resent message be answered as the first one was;
after the retention a resend of that control id is a new message. The worker's retention job
(`core.periodic`, at start and hourly) runs `purge_expired`: it deletes the expired records oldest first, in
small batches, each its own transaction, so it never holds many row locks nor a long transaction. Repeating
it, or running it beside another purge (a batch skips rows another one has locked), is harmless.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import scope_to
from domain.hl7.models import Hl7Message

PURGE_BATCH = 1000


async def purge_batch(session: AsyncSession, *, older_than: timedelta, batch: int = PURGE_BATCH) -> int:
    """Delete at most `batch` records older than `older_than` (of the session's tenant, or every tenant for
    a system session), oldest first, and commit; how many."""
    expired = (
        select(Hl7Message.id)
        .where(Hl7Message.created_at < func.now() - older_than)
        .order_by(Hl7Message.created_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(Hl7Message).where(Hl7Message.id.in_(expired.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_expired(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    keep: timedelta,
    batch: int = PURGE_BATCH,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Delete every record older than `keep` (of one tenant, or every tenant), batch after batch; how many."""
    total = 0
    while True:
        async with sessionmaker() as session:
            scope_to(session, tenant_id)
            deleted = await purge_batch(session, older_than=keep, batch=batch)
        total += deleted
        if deleted < batch:
            return total
