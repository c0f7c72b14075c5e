"""Records analytics owns (voice calls, message sentiment) and the indexes its aggregates read.

The covering indexes on appointments and communications are declared here, beside the queries that need
them, so the period aggregates of the dashboard are index-only scans of one tenant's date range.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.communications.models import Communication
from domain.scheduling.models import Appointment

CALL_STATUSES = ("queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled")
FINAL_CALL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")
# A call's status only moves forward: queued < ringing < in-progress < any final status.
CALL_STATUS_RANK = {"queued": 0, "ringing": 1, "in-progress": 2, **dict.fromkeys(FINAL_CALL_STATUSES, 3)}


class VoiceCall(TenantScoped, Base):
    """One phone call, as Twilio Voice's status callbacks describe it (one row per CallSid)."""

    __tablename__ = "voice_calls"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in CALL_STATUSES)})", name="status"),
        Index("uq_voice_calls_call_sid", "call_sid", unique=True),
        Index("ix_voice_calls_tenant_started", "tenant_id", "started_at"),
        Index("ix_voice_calls_patient", "patient_id"),
    )

    call_sid: Mapped[str] = mapped_column(String(64), nullable=False)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="SET NULL")
    )
    direction: Mapped[str | None] = mapped_column(String(32))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_rank: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    answered: Mapped[bool] = mapped_column(nullable=False, default=False)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MessageSentiment(TenantScoped, Base):
    """The sentiment of one inbound message, scored once by VADER (compound score in [-1, 1])."""

    __tablename__ = "message_sentiments"
    __table_args__ = (
        Index("uq_message_sentiments_communication", "communication_id", unique=True),
        CheckConstraint("compound BETWEEN -1 AND 1", name="compound_range"),
        CheckConstraint("label IN ('positive', 'neutral', 'negative')", name="label"),
    )

    communication_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("communications.id", ondelete="CASCADE"), nullable=False
    )
    compound: Mapped[float] = mapped_column(Float, nullable=False)
    label: Mapped[str] = mapped_column(String(8), nullable=False)
    analyzer: Mapped[str] = mapped_column(String(32), nullable=False)


# Index-only scans for the period aggregates (counts by status, channel, practitioner, direction).
Index(
    "ix_appointments_analytics",
    Appointment.tenant_id,
    Appointment.start_time,
    postgresql_include=["status", "source_channel", "practitioner_id"],
)
Index(
    "ix_communications_analytics",
    Communication.tenant_id,
    Communication.created_at,
    postgresql_include=["direction", "channel", "status", "delivered_at", "read_at"],
)
Index(
    "ix_communications_patient_direction_created",
    Communication.patient_id,
    Communication.direction,
    Communication.created_at,
)
