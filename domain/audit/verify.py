"""Verifying a tenant's hash chain: what `prm audit verify` runs.

Record n must carry `seq` n, the hash of record n-1 as its `prev_hash` (64 zeros for the first) and, as its
`hash`, the hash of its own content and that `prev_hash`. A record changed behind the trigger's back fails
the last check, a record removed from the middle the first, a forged replacement the second for the record
after it. Removing the newest records leaves a shorter chain that still verifies: compare the head this
prints with one noted earlier (or kept outside the database) to catch that.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import GENESIS_HASH, canonical_content, chain_hash
from domain.audit.repository import AuditRepository

BATCH = 5_000


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying one tenant's chain: its length and head, or the first broken link."""

    tenant_id: uuid.UUID
    records: int
    head_seq: int
    head_hash: str
    broken_record_id: int | None = None
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        """Whether every link verified."""
        return self.broken_record_id is None


async def verify_chain(session: AsyncSession, tenant_id: uuid.UUID, *, batch: int = BATCH) -> ChainReport:
    """Walk the tenant's records in chain order and stop at the first that does not verify."""
    repo = AuditRepository(session, tenant_id)
    prev_hash, seq, count = GENESIS_HASH, 0, 0
    while records := await repo.in_chain_order(after_seq=seq, limit=batch):
        for record in records:
            reason = None
            if record.seq != seq + 1:
                reason = f"sequence jumps from {seq} to {record.seq}: records are missing"
            elif record.prev_hash != prev_hash:
                reason = "its prev_hash is not the previous record's hash"
            elif chain_hash(canonical_content(record), record.prev_hash) != record.hash:
                reason = "its content does not match its hash"
            if reason is not None:
                return ChainReport(tenant_id, count, seq, prev_hash, record.id, record.seq, reason)
            prev_hash, seq, count = record.hash, record.seq, count + 1
        session.expunge_all()  # a long chain is read in batches, not held
    return ChainReport(tenant_id, count, seq, prev_hash)
