"""Domain events: what happened to a tenant's records, written in the same transaction as the change (a
transactional outbox), for the journeys' trigger dispatcher (`domain.journeys.trigger_dispatch`) to act on.

Emitting is a plain insert in the caller's transaction, so an event exists exactly when its change
committed, whether or not Temporal or the worker is up at that moment:

    from core.events import emit, EventType
    await emit(session, tenant_id=..., type=EventType.APPOINTMENT_BOOKED, patient_id=...,
               subject=("appointment", appointment_id), facts={"appointment_type": "...", ...},
               source="api", dedupe_key=None)

`facts` is a JSON object of matchable facts (ids, codes, types, channels: see `FACTS` for the keys each
kind of event carries). It lives in PostgreSQL only (the database already holds the patient's record) and
never goes into a log line or a Temporal payload. `dedupe_key` is unique per tenant: emitting twice with
the same key is a no-op, so a repeated external message (an HL7 control id) emits once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped


class EventType(StrEnum):
    """What happened (the `type` a journey's trigger conditions name)."""

    PATIENT_REGISTERED = "patient.registered"
    PATIENT_UPDATED = "patient.updated"
    PATIENT_MERGED = "patient.merged"
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_RESCHEDULED = "appointment.rescheduled"
    APPOINTMENT_CHECKED_IN = "appointment.checked_in"
    APPOINTMENT_COMPLETED = "appointment.completed"
    APPOINTMENT_NO_SHOW = "appointment.no_show"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    TICKET_RESOLVED = "ticket.resolved"
    MESSAGE_RECEIVED = "message.received"
    ENCOUNTER_ADMITTED = "encounter.admitted"
    ENCOUNTER_DISCHARGED = "encounter.discharged"
    ENCOUNTER_ADMISSION_CANCELLED = "encounter.admission_cancelled"
    ENCOUNTER_DISCHARGE_CANCELLED = "encounter.discharge_cancelled"


class EventSource(StrEnum):
    """Where the change came from: a coordinator through the API, an EHR (FHIR, HL7), a provider's
    webhook (an inbound message) or the worker (a booking by chat or from the waitlist)."""

    API = "api"
    FHIR = "fhir"
    HL7 = "hl7"
    WEBHOOK = "webhook"
    WORKER = "worker"


# The facts each kind of event carries (all optional; ids as strings). Emitters outside this service's own
# domains (FHIR, HL7) use the same keys so one journey matches them whatever their source.
FACTS: dict[str, tuple[str, ...]] = {
    "patient": ("fields", "merged_patient_id"),
    "appointment": (
        "appointment_type",
        "practitioner_id",
        "speciality",
        "location_id",
        "channel",
        "status",
        "deleted",  # true on the `appointment.cancelled` of an appointment removed by DELETE
    ),
    "ticket": ("category", "priority", "status"),
    "message": ("channel", "consent_keyword"),
    # An encounter's procedures: codes (e.g. CPT/SNOMED) and display names, as lists of strings.
    "encounter": (
        "procedure_codes",
        "procedure_names",
        "practitioner_id",
        "speciality",
        "location_id",
        "encounter_class",
    ),
}

PRUNE_BATCH = 10_000
MAX_FACTS_BYTES = 16_384  # a fact is an id, a code or a name: an event's facts stay small

_SOURCE_KEY = "event_source"


class DomainEvent(TenantScoped, Base):
    """One thing that happened to one of a tenant's records; undispatched while `dispatched_at` is null."""

    __tablename__ = "domain_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_domain_events_tenant_dedupe_key"),
        CheckConstraint(f"type IN ({', '.join(repr(t.value) for t in EventType)})", name="type"),
        Index("ix_domain_events_undispatched", "id", postgresql_where=text("dispatched_at IS NULL")),
        Index("ix_domain_events_tenant_occurred", "tenant_id", "occurred_at"),
        Index("ix_domain_events_patient", "patient_id"),
    )

    # Ordered: the dispatcher takes events in the order they were emitted.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)  # type: ignore[assignment]
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE")
    )
    # The record the event is about: ("appointment", id), ("ticket", id), ("encounter", visit number) ...
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default=EventSource.API.value)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatch_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    dispatch_error: Mapped[str | None] = mapped_column(String(200))  # an error's class, never its text

    @property
    def record_key(self) -> str:
        """`appointment:<id>`: the triggering record (the patient's own record when the event names none)."""
        if self.subject_type and self.subject_id:
            return f"{self.subject_type}:{self.subject_id}"
        return f"patient:{self.patient_id}"


def set_event_source(session: AsyncSession, source: EventSource | str) -> None:
    """Make `source` the default source of the events `session` emits (e.g. `fhir` for an EHR import)."""
    session.info[_SOURCE_KEY] = EventSource(source).value


def _facts(facts: dict[str, Any] | None) -> dict[str, Any]:
    plain = to_jsonable_python(facts or {})
    if not isinstance(plain, dict):
        raise TypeError("an event's facts are a JSON object")
    if len(repr(plain)) > MAX_FACTS_BYTES:
        raise ValueError("an event's facts are limited to 16 KiB")
    return plain


async def emit(
    session: AsyncSession,
    *,
    type: EventType | str,
    tenant_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    subject: tuple[str, Any] | None = None,
    facts: dict[str, Any] | None = None,
    source: EventSource | str | None = None,
    dedupe_key: str | None = None,
    occurred_at: datetime | None = None,
) -> int | None:
    """Record an event in the caller's transaction; its id, or None when `dedupe_key` was already used.

    `tenant_id` defaults to the session's tenant, `source` to the session's (`set_event_source`) or `api`,
    `occurred_at` to the transaction's time (an EHR message may give its own)."""
    tenant = tenant_id or session.info.get("tenant_id")
    if tenant is None:
        raise RuntimeError("an event needs the tenant of the change it follows")
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "type": EventType(type).value,
        "patient_id": patient_id,
        "subject_type": subject[0] if subject else None,
        "subject_id": str(subject[1]) if subject and subject[1] is not None else None,
        "facts": _facts(facts),
        "source": EventSource(source or session.info.get(_SOURCE_KEY, EventSource.API)).value,
        "dedupe_key": dedupe_key,
    }
    if occurred_at is not None:
        values["occurred_at"] = occurred_at
    stmt = (
        insert(DomainEvent)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_domain_events_tenant_dedupe_key")
        .returning(DomainEvent.id)
    )
    return await session.scalar(stmt)


async def prune_dispatched(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete dispatched events that occurred more than `older_than` ago (a bounded batch, every tenant)
    and commit; how many. The journey starts they caused keep their own record (and the repeat policy).
    Events the dispatcher set aside (dispatched with an error) stay until an operator retries them."""
    result = await session.execute(
        text(
            "DELETE FROM domain_events WHERE id IN (SELECT id FROM domain_events"
            " WHERE dispatched_at IS NOT NULL AND dispatch_error IS NULL"
            " AND occurred_at < now() - make_interval(secs => :age)"
            " ORDER BY id LIMIT :batch)"
        ),
        {"age": older_than.total_seconds(), "batch": PRUNE_BATCH},
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
