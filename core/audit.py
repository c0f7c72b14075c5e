"""The audit trail of patient data (HIPAA 164.312(b)): who did what to which record, when, from where, and
how it ended, in records nobody can change unnoticed.

Records are append-only: the database refuses UPDATE, DELETE and TRUNCATE on `audit_records` (a trigger,
migration 0011; the API and the worker connect as `prm_app`, which may only SELECT and INSERT there and
owns nothing, so it cannot switch the trigger off), and each tenant's records form a hash chain: record n
stores the hash of record n-1 and its own hash over its canonical content and that previous hash, so a
record altered (with the trigger disabled by someone who owns the table) or removed from the middle no
longer verifies (`prm audit verify`).

The hash is keyed (`HashVersion.HMAC_SHA256`, under `core.audit_key`, a secret the database never holds):
an insider with the owner's role can rewrite the rows, but not recompute hashes that verify. Records
written before the key (`HashVersion.SHA256`) keep their plain SHA-256 and still verify; the first keyed
record after them pins them, since its HMAC covers their head's hash. The worker anchors each tenant's head
outside the database (`domain.audit.anchor`), which catches a rewrite even by someone who took the key.

Appending takes a per-tenant advisory lock held to the end of the transaction, then reads the chain's head
in a new statement (under READ COMMITTED each statement sees what committed before it began, so the head is
the latest committed one): two transactions appending for one tenant queue up instead of forking the chain.
`uq_audit_records_tenant_id_seq` would refuse a fork anyway. A write's record is appended in the write's
own transaction (`append`); reads are queued in the process and appended in batches (`AuditBuffer`).

Ids only: a record names the user, the operation, the record and the patient by id, never a name, a phone
number, a search term or a message body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    String,
    column,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.audit_key import AuditKey, audit_key_of
from core.database import Base

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64  # the `prev_hash` of a tenant's first record


class HashVersion(IntEnum):
    """How a record's hash is computed: plain SHA-256 (records written before the chain was keyed), or
    HMAC-SHA256 under the audit key (every record written since)."""

    SHA256 = 1
    HMAC_SHA256 = 2


CURRENT_HASH_VERSION = HashVersion.HMAC_SHA256


class AuditOutcome(StrEnum):
    """How the request ended, from its status: allowed (2xx, 3xx), denied (403), not_found (404), error."""

    ALLOWED = "allowed"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    ERROR = "error"


def outcome_of(status: int) -> AuditOutcome:
    """The outcome an HTTP status stands for."""
    if status < 400:
        return AuditOutcome.ALLOWED
    if status == 403:
        return AuditOutcome.DENIED
    if status == 404:
        return AuditOutcome.NOT_FOUND
    return AuditOutcome.ERROR


class AuditRecord(Base):
    """One access to patient data, chained to the tenant's previous record by `prev_hash`."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("uq_audit_records_tenant_id_seq", "tenant_id", "seq", unique=True),
        Index("ix_audit_records_tenant_patient", "tenant_id", "patient_id", "seq"),
        Index("ix_audit_records_tenant_occurred_at", "tenant_id", "occurred_at"),
        CheckConstraint("hash_version IN (1, 2)", name="hash_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: the trail outlives a tenant's data (and a cascade would be refused by the trigger).
    tenant_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 1, 2, 3, ... per tenant, no gaps
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    user_sub: Mapped[str] = mapped_column(String(200), nullable=False)
    user_roles: Mapped[list[str]] = mapped_column(ARRAY(String(20)), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)  # the OpenAPI operation id
    resource_type: Mapped[str] = mapped_column(String(50), nullable=False)
    resource_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    # The answer's status; empty on a write's record, committed with the write before the answer exists.
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # `HashVersion`: how `hash` was computed (migration 0024; the records before it are SHA-256).
    hash_version: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")


@dataclass(frozen=True)
class AuditEvent:
    """What one request did to one record (or list), before it takes its place in the chain."""

    tenant_id: uuid.UUID
    user_sub: str
    user_roles: tuple[str, ...]
    action: str
    resource_type: str
    outcome: AuditOutcome
    occurred_at: datetime
    resource_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    status_code: int | None = None
    request_id: str | None = None
    client_address: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who administers something outside a patient's data (an integration client, a tenant setting), as
    the audit trail names them: an admin's `sub`, or `cli:<user>` for the command line."""

    sub: str
    roles: tuple[str, ...] = ("admin",)
    request_id: str | None = None
    client_address: str | None = None

    def event(
        self,
        *,
        tenant_id: uuid.UUID,
        action: str,
        resource_type: str,
        resource_id: uuid.UUID | None,
        outcome: AuditOutcome = AuditOutcome.ALLOWED,
    ) -> AuditEvent:
        """The record of this actor's act on one resource of the tenant, now."""
        return AuditEvent(
            tenant_id=tenant_id,
            user_sub=self.sub[:200],
            user_roles=self.roles,
            action=action,
            resource_type=resource_type,
            outcome=outcome,
            occurred_at=datetime.now(UTC),
            resource_id=resource_id,
            request_id=self.request_id,
            client_address=self.client_address,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def canonical_content(row: Any) -> bytes:
    """The bytes a record's hash covers: every field but `id`, `prev_hash` and `hash`, as sorted JSON.

    `row` is a stored `AuditRecord` or the dict about to be inserted; both give the same bytes."""
    get: Callable[[str], Any] = row.__getitem__ if isinstance(row, dict) else lambda name: getattr(row, name)
    content = {
        "tenant_id": str(get("tenant_id")),
        "seq": int(get("seq")),
        "occurred_at": get("occurred_at").astimezone(UTC).isoformat(timespec="microseconds"),
        "user_sub": get("user_sub"),
        "user_roles": sorted(get("user_roles")),
        "action": get("action"),
        "resource_type": get("resource_type"),
        "resource_id": _text(get("resource_id")),
        "patient_id": _text(get("patient_id")),
        "outcome": str(get("outcome")),
        "status_code": get("status_code"),
        "request_id": get("request_id"),
        "client_address": get("client_address"),
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(content: bytes, prev_hash: str, *, version: int, key: AuditKey | None) -> str:
    """A record's hash over the previous record's hash and the record's canonical content: HMAC-SHA256
    under `key` (`HashVersion.HMAC_SHA256`), or the plain SHA-256 of records written before the key."""
    message = prev_hash.encode("ascii") + b"\n" + content
    if version == HashVersion.SHA256:
        return hashlib.sha256(message).hexdigest()
    if version == HashVersion.HMAC_SHA256 and key is not None:
        return key.mac(message)
    raise ValueError(f"cannot compute a hash of version {version} without the audit key")


CHAIN_HEAD = text("SELECT seq, hash FROM prm_audit_chain_head(:tenant_id)").columns(
    column("seq", BigInteger), column("hash", String)
)


async def append(session: AsyncSession, events: Sequence[AuditEvent]) -> None:
    """Chain `events` onto their tenants' trails in `session`'s transaction (committed with it).

    Tenants are locked in a fixed order, so two batches spanning the same tenants cannot deadlock. Records
    are signed with the key of the session's engine (`core.audit_key`)."""
    key = audit_key_of(session.get_bind().get_execution_options())
    by_tenant: dict[uuid.UUID, list[AuditEvent]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    for tenant_id in sorted(by_tenant):
        # The tenant's advisory lock, then its trail's last record, in one round trip (migration 0021).
        head = (await session.execute(CHAIN_HEAD, {"tenant_id": tenant_id})).first()
        seq, prev_hash = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
        rows = []
        for event in by_tenant[tenant_id]:
            seq += 1
            row: dict[str, Any] = {
                "tenant_id": tenant_id,
                "seq": seq,
                "occurred_at": event.occurred_at,
                "user_sub": event.user_sub,
                "user_roles": sorted(event.user_roles),
                "action": event.action,
                "resource_type": event.resource_type,
                "resource_id": event.resource_id,
                "patient_id": event.patient_id,
                "outcome": event.outcome.value,
                "status_code": event.status_code,
                "request_id": event.request_id,
                "client_address": event.client_address,
                "prev_hash": prev_hash,
                "hash_version": CURRENT_HASH_VERSION.value,
            }
            row["hash"] = prev_hash = chain_hash(
                canonical_content(row), prev_hash, version=CURRENT_HASH_VERSION, key=key
            )
            rows.append(row)
        await session.execute(insert(AuditRecord), rows)


class AuditBuffer:
    """Reads' records, queued in the process and appended in batches: every `interval` seconds, or as soon
    as `batch` are waiting. The request only appends to a list; `close` (the app's shutdown) flushes the
    rest. While the database is unreachable records wait (up to `max_pending`, then the oldest are dropped,
    loudly) and are appended when it is back; a process killed outright loses at most one interval's."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = 1.0,
        batch: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval, self.batch, self.max_pending = interval, batch, max_pending
        self._pending: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: the trail keeps the order of the queue
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, event: AuditEvent) -> None:
        """Queue `event` (no I/O: the request path stays fast)."""
        self._pending.append(event)
        if len(self._pending) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        """How many records wait to be appended."""
        return len(self._pending)

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._run(), name="audit-buffer")

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._closing:
                await self.flush()

    async def flush(self) -> int:
        """Append what is queued, in one transaction; how many were appended (0 when the database failed:
        they stay queued for the next flush)."""
        async with self._flushing:
            events, self._pending = self._pending, []
            if not events:
                return 0
            try:
                async with self.sessionmaker() as session:
                    await append(session, events)
                    await session.commit()
            except Exception as exc:
                self._pending[:0] = events
                overflow = len(self._pending) - self.max_pending
                if overflow > 0:
                    del self._pending[:overflow]
                    log.error("audit buffer full: dropped the %d oldest read record(s)", overflow)
                log.warning("audit records not appended yet (%s); %d wait", type(exc).__name__, self.pending)
                return 0
            return len(events)

    async def close(self) -> None:
        """Stop the background flushing and append whatever is still queued."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._pending:
            log.error("shutting down with %d audit record(s) not appended", self.pending)
