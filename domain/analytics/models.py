"""Records analytics owns (voice calls, message sentiment, the daily rollups) and the indexes its reads use.

The daily rollups (`analytics_*`) are written only by PostgreSQL triggers (migration 0008): every insert,
update and delete of an appointment, message or sentiment score adjusts them in the same transaction, so
the dashboard sums a few rows per day instead of scanning the period. The counts are bumped when the
transaction commits (deferred constraint triggers, migration 0034), so concurrent writers of a tenant do
not queue on its counter rows for the length of their transactions. `day` is the local date in the
tenant's time zone (`tenants.timezone`); changing the zone rebuilds the tenant's rows
(`analytics_rebuild(tenant)`). A counter row may stay at 0 after a delete; readers skip such rows.

The covering indexes on appointments and communications are declared here, beside the queries that need
them (the base-table reads that remain: filtered appointment figures, and the rebuild).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.communications.models import Communication
from domain.journeys.models import JourneyInstanceStage
from domain.scheduling.models import Appointment
from domain.tickets.models import Ticket

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


class _Rollup(TenantScoped):
    """A rollup row: inserted by triggers (hence the server-side id), one tenant's, no index of its own on
    `tenant_id` (every key starts with it)."""

    id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[date] = mapped_column(Date, nullable=False)


class AppointmentDaily(_Rollup, Base):
    """Appointments by local day of their start, status and booking channel ('' when none was given)."""

    __tablename__ = "analytics_appointment_daily"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "day", "status", "source_channel", name="uq_analytics_appointment_daily_key"
        ),
    )

    status: Mapped[str] = mapped_column(String(16), nullable=False)
    source_channel: Mapped[str] = mapped_column(String(32), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class AppointmentPractitionerDaily(_Rollup, Base):
    """Appointments by local day of their start and practitioner (the dashboard's by-practitioner series).

    Kept apart from `AppointmentDaily`: one table keyed on status, channel and practitioner would hold
    ~2,000 rows a day for 200 practitioners, too many to sum over 90 days within the dashboard's budget."""

    __tablename__ = "analytics_appointment_practitioner_daily"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "day", "practitioner_id", name="uq_analytics_appointment_practitioner_daily_key"
        ),
    )

    practitioner_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class CommunicationDaily(_Rollup, Base):
    """Messages by local day of their creation, direction, channel and (current) status."""

    __tablename__ = "analytics_communication_daily"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "day", "direction", "channel", "status", name="uq_analytics_communication_daily_key"
        ),
    )

    direction: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class SentimentDaily(_Rollup, Base):
    """Sentiment scores of inbound messages by local day of the message: count, sum of compound scores,
    count per label."""

    __tablename__ = "analytics_sentiment_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "day", name="uq_analytics_sentiment_daily_key"),)

    scored: Mapped[int] = mapped_column(Integer, nullable=False)
    compound_sum: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    positive: Mapped[int] = mapped_column(Integer, nullable=False)
    neutral: Mapped[int] = mapped_column(Integer, nullable=False)
    negative: Mapped[int] = mapped_column(Integer, nullable=False)


class Reply(_Rollup, Base):
    """A patient's reply: the first inbound message after an outbound one (before the next outbound), kept
    by the communications trigger. Each outbound message is answered at most once, each inbound message
    answers at most one. `bucket` is `analytics_reply_bucket(response_seconds)`, a log scale of 2 % steps;
    `day` is the local date of the reply."""

    __tablename__ = "analytics_replies"
    __table_args__ = (
        Index("uq_analytics_replies_outbound", "outbound_id", unique=True),
        Index("uq_analytics_replies_inbound", "inbound_id", unique=True),
        # The median's second step reads one bucket of the period: an index-only range.
        Index(
            "ix_analytics_replies_tenant_bucket_replied",
            "tenant_id",
            "bucket",
            "replied_at",
            postgresql_include=["response_seconds"],
        ),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    outbound_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("communications.id", ondelete="CASCADE"), nullable=False
    )
    inbound_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("communications.id", ondelete="CASCADE"), nullable=False
    )
    replied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    response_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    bucket: Mapped[int] = mapped_column(Integer, nullable=False)


class ReplyDaily(_Rollup, Base):
    """How many replies of each local day fall in each response-time bucket (the histogram the median
    is located in)."""

    __tablename__ = "analytics_reply_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "bucket", name="uq_analytics_reply_daily_key"),)

    bucket: Mapped[int] = mapped_column(Integer, nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class JourneyDaily(_Rollup, Base):
    """Journey instances by local day and event: `started` (day of started_at), `completed` (completed_at
    of a completed instance), `cancelled` (cancelled_at of a cancelled one), `failed` (updated_at of a
    failed one)."""

    __tablename__ = "analytics_journey_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "event", name="uq_analytics_journey_daily_key"),)

    event: Mapped[str] = mapped_column(String(16), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class JourneyStageDaily(_Rollup, Base):
    """Completed stages (with a start) by local day of completion, journey and stage: how many, and the sum
    of their durations in seconds."""

    __tablename__ = "analytics_journey_stage_daily"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "day",
            "journey_id",
            "order_index",
            "stage_name",
            name="uq_analytics_journey_stage_daily_key",
        ),
    )

    journey_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    order_index: Mapped[int] = mapped_column(Integer, nullable=False)
    stage_name: Mapped[str] = mapped_column(String(200), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    seconds_sum: Mapped[Decimal] = mapped_column(Numeric, nullable=False)


# Overdue journeys: the active stages that started before the cutoff, without reading the others.
Index(
    "ix_journey_instance_stages_active_started",
    JourneyInstanceStage.tenant_id,
    JourneyInstanceStage.started_at,
    postgresql_include=["instance_id"],
    postgresql_where=text("status = 'active'"),
)

# Tickets resolved in a period (the dashboard's ticket summary reads index ranges, not every ticket).
Index(
    "ix_tickets_tenant_resolved",
    Ticket.tenant_id,
    Ticket.resolved_at,
    postgresql_where=text("resolved_at IS NOT NULL"),
)

# Index-only scans over the base tables: the filtered appointment figures the rollups do not cover, and
# `analytics_rebuild`.
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
