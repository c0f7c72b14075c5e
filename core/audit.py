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

A record reaches the chain in two steps. `append` inserts it into `audit_pending`, in the caller's
transaction and without a lock: a write's record commits with the write or not at all, and writes of one
tenant never wait for each other. `chain_pending` (the appender) then takes the oldest waiting records,
chains them onto their tenants' trails and deletes them, in one transaction. Appenders run one at a time
across every process: each takes the advisory lock `audit-appender`, held to the end of its transaction,
before it reads anything, and under READ COMMITTED each statement after the lock sees what committed
before it, so an appender never forks a chain nor misses what the one before it left (the per-tenant lock
`prm_audit_chain_head` takes, and `uq_audit_records_tenant_id_seq`, refuse a fork anyway), and once a round
ends every record committed before it began is chained (an appender waits at most
`APPENDER_LOCK_TIMEOUT_MS` for another's round; past it, its own round fails and its records wait for the
next). The chain's order is the order records reached the appender: about commit order, with a batch's
records in the order they occurred.
The API's `AuditBuffer` is an appender (woken after each write, and every interval; it also chains the
reads it queues in the process, which never pass through the table); the worker's `audit-chain` job
chains what was left by processes that have none (the command line, a stopped API). Until it is chained a
record can be deleted by the app's role: the window is an appender's interval (1 s).

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
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.audit_key import AuditKey, audit_key_of
from core.database import Base, advisory_xact_lock, after_commit, copy_rows

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


class _AuditContent:
    """What a record says: the columns a waiting record and a chained one share."""

    # No foreign key: the trail outlives a tenant's data (and a cascade would be refused by the trigger).
    tenant_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
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


CONTENT_FIELDS = tuple(name for name in _AuditContent.__annotations__)


class AuditRecord(_AuditContent, Base):
    """One access to patient data, chained to the tenant's previous record by `prev_hash`."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("uq_audit_records_tenant_id_seq", "tenant_id", "seq", unique=True),
        Index("ix_audit_records_tenant_patient", "tenant_id", "patient_id", "seq"),
        Index("ix_audit_records_tenant_occurred_at", "tenant_id", "occurred_at"),
        CheckConstraint("hash_version IN (1, 2)", name="hash_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 1, 2, 3, ... per tenant, no gaps
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # `HashVersion`: how `hash` was computed (migration 0024; the records before it are SHA-256).
    hash_version: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")


class AuditPending(_AuditContent, Base):
    """A record committed with its request's transaction, waiting for an appender to chain it (migration
    0033): `id` is the order it is taken in."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)


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


def _content(event: AuditEvent) -> dict[str, Any]:
    return {
        "tenant_id": event.tenant_id,
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
    }


_APPENDER = "audit_appender"


def bind_appender(session: AsyncSession, appender: AuditBuffer) -> None:
    """Let the records `session` appends be chained by `appender` right after its commit, instead of at the
    next round of an appender (the API binds its `AuditBuffer` to each request's session)."""
    session.info[_APPENDER] = appender


async def append(session: AsyncSession, events: Sequence[AuditEvent]) -> None:
    """Record `events` in `session`'s transaction: committed with it, or rolled back with it. They wait in
    `audit_pending` (no lock is taken) until an appender chains them (`chain_pending`): the one bound to the
    session (`bind_appender`) right after the commit, or the next round of any."""
    if not events:
        return
    await session.execute(insert(AuditPending), [_content(event) for event in events])
    appender: AuditBuffer | None = session.info.get(_APPENDER)
    if appender is not None:
        after_commit(session, appender.wake, once=True)


def _take_pending(limit: int) -> Any:
    """Delete and return up to `limit` waiting records, oldest first (under the appender's lock)."""
    waiting = select(AuditPending.id).order_by(AuditPending.id).limit(limit)
    columns = AuditPending.__table__.c
    return (
        delete(AuditPending)
        .where(AuditPending.id.in_(waiting.scalar_subquery()))
        .returning(columns.id, *(columns[name] for name in CONTENT_FIELDS))
    )


# Records one appender's round chains at most, in one transaction, of each kind (waiting records, and the
# API's queued reads); the worker's `audit-chain` job takes rounds of the same size. A round hashes them
# with no await in between: 2,000 records held the event loop for 24 ms of hashing alone (the API's, or the
# worker's, which also serves activities), and a round that fell behind under load grew without bound.
BUFFER_ROUND = 250
APPENDER_LOCK_TIMEOUT_MS = 2000  # how long an appender waits for another's round (or a tenant's lock)
# How long the API's appender lingers once woken, so that the writes committing meanwhile share its round:
# woken by every commit, it ran a transaction of five statements per write.
WAKE_LINGER_SECONDS = 0.05


async def chain_pending(
    session: AsyncSession, events: Sequence[AuditEvent] = (), *, limit: int = BUFFER_ROUND
) -> int:
    """Chain up to `limit` waiting records, and `events` (reads queued in the process), onto their
    tenants' trails in `session`'s transaction; the caller commits. Returns how many waiting records it
    took: `limit` means more may wait.

    One appender at a time (the module docstring); tenants are then locked in a fixed order. Records are
    signed with the key of the session's engine (`core.audit_key`)."""
    key = audit_key_of(session.get_bind().get_execution_options())
    # Waiting on another appender is bounded: one whose process stalls mid-round (its transaction open)
    # must not hold up every other appender, `GET /audit` or a shutdown. Past the bound this round fails
    # and its records wait for the next.
    await session.execute(text(f"SET LOCAL lock_timeout = '{APPENDER_LOCK_TIMEOUT_MS}ms'"))
    await advisory_xact_lock(session, "audit-appender")
    taken = sorted((await session.execute(_take_pending(limit))).mappings(), key=lambda r: r["id"])
    by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for content in [{name: row[name] for name in CONTENT_FIELDS} for row in taken] + [
        _content(event) for event in events
    ]:
        by_tenant.setdefault(content["tenant_id"], []).append(content)
    for tenant_id in sorted(by_tenant):
        # The tenant's advisory lock, then its trail's last record, in one round trip (migration 0021).
        head = (await session.execute(CHAIN_HEAD, {"tenant_id": tenant_id})).first()
        seq, prev_hash = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
        rows = []
        # A batch's records take their places in the order they occurred (a stable sort: ties keep the
        # order they were taken in).
        for content in sorted(by_tenant[tenant_id], key=lambda c: c["occurred_at"]):
            seq += 1
            row = {**content, "seq": seq, "prev_hash": prev_hash, "hash_version": CURRENT_HASH_VERSION.value}
            row["hash"] = prev_hash = chain_hash(
                canonical_content(row), prev_hash, version=CURRENT_HASH_VERSION, key=key
            )
            rows.append(row)
        await copy_rows(session, AuditRecord.__tablename__, rows)
    return len(taken)


async def chain_round(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """One round of waiting records chained and committed (the worker's `audit-chain` job); True when the
    round was full, so more may wait (the job then runs the next at once)."""
    async with sessionmaker() as session:
        taken = await chain_pending(session)
        await session.commit()
    return taken >= BUFFER_ROUND


class AuditBuffer:
    """The API process's appender: chains the records waiting in `audit_pending` (woken by `wake` after a
    write commits, then lingering `linger` seconds for the writes committing meanwhile; and every
    `interval` seconds) together with the reads' records it queues in the process
    (`add`; they never pass through the table: the request only appends to a list), as soon as `batch`
    reads wait. `close` (the app's shutdown) chains the rest. While the database is unreachable the reads
    wait (up to `max_queued`, then the oldest are dropped, loudly) and are chained when it is back; a
    process killed outright loses at most one interval's reads (a write's record is in the table)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = 1.0,
        batch: int = 500,
        max_queued: int = 100_000,
        linger: float = WAKE_LINGER_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval, self.batch, self.max_queued, self.linger = interval, batch, max_queued, linger
        self._queued: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: the trail keeps the order of the queue
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, event: AuditEvent) -> None:
        """Queue a read's `event` (no I/O: the request path stays fast)."""
        self._queued.append(event)
        if len(self._queued) >= self.batch:
            self._wake.set()

    async def wake(self) -> None:
        """A write committed its record to `audit_pending`: chain it after `linger` rather than at the next
        interval (an after-commit job of the write's transaction)."""
        self._wake.set()

    @property
    def queued(self) -> int:
        """How many reads' records wait in the process."""
        return len(self._queued)

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._run(), name="audit-buffer")

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                if not self._closing:
                    await asyncio.sleep(self.linger)  # the wakes meanwhile join this round
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._closing:
                await self.flush()

    async def flush(self) -> int:
        """Chain the reads queued when it was called and every record waiting in `audit_pending`, in rounds
        of at most `BUFFER_ROUND` of each, a transaction each (the requests in flight are served between
        rounds); how many were chained (what the failing round held stays queued or waiting when the
        database fails). Reads queued meanwhile wait for the next flush."""
        async with self._flushing:
            left = len(self._queued)
            chained = 0
            events: list[AuditEvent] = []
            try:
                while True:
                    events = self._queued[: min(left, BUFFER_ROUND)]
                    del self._queued[: len(events)]
                    left -= len(events)
                    async with self.sessionmaker() as session:
                        taken = await chain_pending(session, events, limit=BUFFER_ROUND)
                        await session.commit()
                    chained, events = chained + taken + len(events), []
                    if left == 0 and taken < BUFFER_ROUND:
                        return chained
            except Exception as exc:
                self._queued[:0] = events
                overflow = len(self._queued) - self.max_queued
                if overflow > 0:
                    del self._queued[:overflow]
                    log.error("audit buffer full: dropped the %d oldest read record(s)", overflow)
                log.warning(
                    "audit records not chained yet (%s); %d reads queued", type(exc).__name__, self.queued
                )
                return chained

    async def close(self) -> None:
        """Stop the background flushing and chain whatever is still queued or waiting."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._queued:
            log.error("shutting down with %d audit record(s) not chained", self.queued)
