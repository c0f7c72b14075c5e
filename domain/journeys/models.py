"""Journey definitions, their stages, running instances and each instance's stage statuses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.enums import JourneyInstanceStatus, RepeatPolicy, StageStatus, TriggerStartStatus, sql_in


class Journey(TenantScoped, Base):
    """A template of stages (post-surgery recovery, onboarding, ...) that patients are placed on."""

    __tablename__ = "journeys"
    __table_args__ = (Index("ix_journeys_tenant_type", "tenant_id", "journey_type"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    journey_type: Mapped[str | None] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(nullable=False, default=False)
    is_active: Mapped[bool] = mapped_column(nullable=False, default=True)
    trigger_conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class JourneyStage(TenantScoped, Base):
    """One step of a journey: what triggers it and what it does."""

    __tablename__ = "journey_stages"
    __table_args__ = (UniqueConstraint("journey_id", "order_index", name="uq_journey_stages_journey_order"),)

    journey_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journeys.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    order_index: Mapped[int] = mapped_column(Integer, nullable=False)
    trigger_event: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    actions: Mapped[list[Any] | dict[str, Any]] = mapped_column(JSONB, nullable=False, default=list)


class JourneyInstance(TenantScoped, Base):
    """A patient on a journey; driven by exactly one Temporal workflow (`journey-instance-<id>`)."""

    __tablename__ = "journey_instances"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(JourneyInstanceStatus)})", name="status"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_journey_instances_tenant_idempotency_key"),
        Index("ix_journey_instances_patient", "patient_id"),
        Index("ix_journey_instances_tenant_status", "tenant_id", "status"),
        Index("ix_journey_instances_journey", "journey_id"),
        # A journey whose repeat policy allows a patient on it once at a time (`one_active`): whichever road
        # places them (the API, a trigger, a campaign), the database holds them to one active instance.
        Index(
            "uq_journey_instances_one_active",
            "journey_id",
            "patient_id",
            unique=True,
            postgresql_where=text("one_active AND status = 'active'"),
        ),
    )

    journey_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journeys.id", ondelete="RESTRICT"), nullable=False
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("appointments.id", ondelete="SET NULL")
    )
    encounter_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=JourneyInstanceStatus.ACTIVE.value
    )
    current_stage_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # The definition as it was when the instance started: later edits never change a running instance.
    definition_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    one_active: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=text("false"))
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JourneyInstanceStage(TenantScoped, Base):
    """Where one instance stands on one stage: status, timestamps, notes."""

    __tablename__ = "journey_instance_stages"
    __table_args__ = (
        UniqueConstraint("instance_id", "order_index", name="uq_journey_instance_stages_instance_order"),
        CheckConstraint(f"status IN ({sql_in(StageStatus)})", name="status"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journey_instances.id", ondelete="CASCADE"), nullable=False
    )
    stage_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    order_index: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=StageStatus.PENDING.value)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(Text)


class JourneyTriggerStart(TenantScoped, Base):
    """A journey that a domain event starts for a patient (at `due_at`, after the trigger's delay).

    The database holds the trigger's promises: one start per (journey, patient, event); under the repeat
    policy `never` one per (journey, patient), under `once_per_record` one per triggering record, and under
    `after_cooldown` none whose cool-down window overlaps another's. A start that was `skipped` (the
    journey was deactivated, the patient is no longer active) promises nothing."""

    __tablename__ = "journey_trigger_starts"
    __table_args__ = (
        UniqueConstraint(
            "journey_id", "patient_id", "event_id", name="uq_journey_trigger_starts_journey_patient_event"
        ),
        CheckConstraint(f"status IN ({sql_in(TriggerStartStatus)})", name="status"),
        CheckConstraint(f"repeat_policy IN ({sql_in(RepeatPolicy)})", name="repeat_policy"),
        Index(
            "uq_journey_trigger_starts_never",
            "journey_id",
            "patient_id",
            unique=True,
            postgresql_where=text("repeat_policy = 'never' AND status <> 'skipped'"),
        ),
        Index(
            "uq_journey_trigger_starts_once_per_record",
            "journey_id",
            "patient_id",
            "record_key",
            unique=True,
            postgresql_where=text("repeat_policy = 'once_per_record' AND status <> 'skipped'"),
        ),
        ExcludeConstraint(
            ("journey_id", "="),
            ("patient_id", "="),
            (text("tstzrange(occurred_at, cooldown_until, '[)')"), "&&"),
            name="ex_journey_trigger_starts_cooldown",
            using="gist",
            where=text("repeat_policy = 'after_cooldown' AND status <> 'skipped'"),
        ),
        Index("ix_journey_trigger_starts_due", "due_at", postgresql_where=text("status = 'pending'")),
        Index("ix_journey_trigger_starts_event", "event_id"),
    )

    journey_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journeys.id", ondelete="CASCADE"), nullable=False
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("domain_events.id", ondelete="SET NULL")
    )
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)
    record_key: Mapped[str] = mapped_column(String(140), nullable=False)
    repeat_policy: Mapped[str] = mapped_column(String(16), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cooldown_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=TriggerStartStatus.PENDING.value)
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journey_instances.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(String(200))  # why it was skipped (no patient data)
