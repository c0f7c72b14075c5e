"""Verifying a tenant's hash chain and its anchors: what `prm audit verify` runs.

Record n must carry `seq` n, the hash of record n-1 as its `prev_hash` (64 zeros for the first) and, as its
`hash`, the hash of its own content and that `prev_hash`, computed as its `hash_version` says: HMAC-SHA256
under the audit key, or plain SHA-256 for the records written before the chain was keyed (never after a
keyed one: turning keyed records back into unkeyed ones is how a rewrite without the key would try). A
record changed behind the trigger's back fails the hash check, even when whoever changed it recomputed the
chain, unless they hold the key; a record removed from the middle fails the first check, a forged
replacement the second for the record after it.

Then the anchors (`domain.audit.anchor`): each head anchored outside the database must still be in the
chain with the hash it had. That catches a rewrite by someone who holds the key, and a trail cut short.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import GENESIS_HASH, AuditRecord, HashVersion, canonical_content, chain_hash
from core.audit_key import AuditKey
from domain.audit.anchor import Anchor
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
    anchors: int = 0  # how many anchored heads were found in the chain

    @property
    def intact(self) -> bool:
        """Whether every link and every anchor verified."""
        return self.reason is None


def _broken_link(record: AuditRecord, seq: int, prev_hash: str, keyed: bool, key: AuditKey) -> str | None:
    """Why `record` does not follow the record (`seq`, `prev_hash`) before it, or None when it does."""
    if record.seq != seq + 1:
        return f"sequence jumps from {seq} to {record.seq}: records are missing"
    if record.prev_hash != prev_hash:
        return "its prev_hash is not the previous record's hash"
    if record.hash_version not in set(HashVersion):
        return f"its hash version {record.hash_version} is unknown"
    if keyed and record.hash_version == HashVersion.SHA256:
        return "an unkeyed (SHA-256) record after keyed ones: the chain was rewritten"
    expected = chain_hash(canonical_content(record), record.prev_hash, version=record.hash_version, key=key)
    if expected != record.hash:
        return "its content does not match its hash"
    return None


def _contradicted(record: AuditRecord, anchor: Anchor | None) -> str | None:
    if anchor is None or anchor.hash == record.hash:
        return None
    return (
        f"its hash differs from the head anchored at {anchor.anchored_at.isoformat()}: "
        "the trail was rewritten after it was anchored"
    )


async def verify_chain(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    key: AuditKey,
    anchors: Mapping[int, Anchor] | None = None,
    *,
    batch: int = BATCH,
) -> ChainReport:
    """Walk the tenant's records in chain order and stop at the first that does not verify, by its chain
    or by an anchor of its tenant (`anchors`, by seq); then check no anchored record is missing."""
    anchors = anchors or {}
    repo = AuditRepository(session, tenant_id)
    prev_hash, seq, count, keyed, matched = GENESIS_HASH, 0, 0, False, 0
    while records := await repo.in_chain_order(after_seq=seq, limit=batch):
        for record in records:
            reason = _broken_link(record, seq, prev_hash, keyed, key) or _contradicted(
                record, anchors.get(record.seq)
            )
            if reason is not None:
                return ChainReport(tenant_id, count, seq, prev_hash, record.id, record.seq, reason, matched)
            matched += record.seq in anchors
            keyed = keyed or record.hash_version != HashVersion.SHA256
            prev_hash, seq, count = record.hash, record.seq, count + 1
        session.expunge_all()  # a long chain is read in batches, not held
    if anchors and (last := max(anchors)) > seq:
        reason = (
            f"the trail ends at seq {seq} but seq {last} was anchored at "
            f"{anchors[last].anchored_at.isoformat()}: records were removed"
        )
        return ChainReport(tenant_id, count, seq, prev_hash, None, seq + 1, reason, matched)
    return ChainReport(tenant_id, count, seq, prev_hash, anchors=matched)
