"""How long the records of HL7 v2 messages are kept (`PRM_HL7_RETENTION_DAYS`), and the worker's purge.

A record (control id, type, digest, ACK) is what lets a resent message be answered as the first one was;
after the retention a resend of that control id is a new message. The worker runs `Hl7Retention` (every hour,
and once at start): it deletes the expired records oldest first, in small batches, each its own transaction,
so it never holds many row locks nor a long transaction. Repeating it, or running it on several workers at
once (a batch skips rows another one has locked), is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import scope_to
from domain.hl7.models import Hl7Message

log = logging.getLogger(__name__)
PURGE_BATCH = 1000
PURGE_EVERY_SECONDS = 3600.0


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


@dataclass
class Hl7Retention:
    """The worker's purge of expired HL7 message records: `purge` now, or `run` it every `every` seconds."""

    sessionmaker: async_sessionmaker[AsyncSession]
    keep: timedelta
    every: float = PURGE_EVERY_SECONDS
    batch: int = PURGE_BATCH
    tenant_id: uuid.UUID | None = None  # None: every tenant (the worker); one: a test, an operator's run

    async def purge(self) -> int:
        """Delete every expired record, batch after batch; how many."""
        total = 0
        while True:
            async with self.sessionmaker() as session:
                scope_to(session, self.tenant_id)
                deleted = await purge_batch(session, older_than=self.keep, batch=self.batch)
            total += deleted
            if deleted < self.batch:
                break
        if total:
            log.info("purged %d expired HL7 message records", total)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Purge now, then every `every` seconds, until `stop` is set; a failed purge waits for the next."""
        while not stop.is_set():
            try:
                await self.purge()
            except Exception as exc:  # the database down: the next round catches up
                log.warning("HL7 retention purge failed: %s", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every)
            except TimeoutError:
                pass
