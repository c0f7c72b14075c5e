"""Locations, time slots and appointments, with the database's no-double-booking guarantees."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.enums import ACTIVE_APPOINTMENT_STATUSES, AppointmentStatus, SlotStatus, sql_in


class Location(TenantScoped, Base):
    """A place where appointments happen; its time zone defines the clinic's local day."""

    __tablename__ = "locations"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str | None] = mapped_column(String(400))
    phone: Mapped[str | None] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    is_active: Mapped[bool] = mapped_column(nullable=False, default=True)


class TimeSlot(TenantScoped, Base):
    """A bookable window of a practitioner; never booked past its capacity."""

    __tablename__ = "time_slots"
    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="within_capacity"),
        CheckConstraint(f"status IN ({sql_in(SlotStatus)})", name="status"),
        Index("ix_time_slots_practitioner_start", "practitioner_id", "start_time"),
        Index("ix_time_slots_tenant_start", "tenant_id", "start_time"),
    )

    practitioner_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("practitioners.id", ondelete="CASCADE"), nullable=False
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("locations.id", ondelete="SET NULL")
    )
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    booked_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=SlotStatus.OPEN.value)


class Appointment(TenantScoped, Base):
    """A patient's booked time with a practitioner."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint(f"status IN ({sql_in(AppointmentStatus)})", name="status"),
        # One practitioner never has two active appointments that overlap (needs btree_gist).
        # Appointments booked into a shared (capacity > 1) slot carry the slot id and are exempt;
        # the slot's capacity check guards them instead.
        ExcludeConstraint(
            ("practitioner_id", "="),
            (text("tstzrange(start_time, end_time, '[)')"), "&&"),
            name="ex_appointments_practitioner_overlap",
            using="gist",
            where=text(f"status IN ({sql_in(ACTIVE_APPOINTMENT_STATUSES)}) AND NOT shared_slot"),
        ),
        Index("ix_appointments_tenant_start", "tenant_id", "start_time"),
        Index("ix_appointments_patient_start", "patient_id", "start_time"),
        Index("ix_appointments_practitioner_start", "practitioner_id", "start_time"),
        Index("ix_appointments_tenant_status", "tenant_id", "status"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="RESTRICT"), nullable=False
    )
    practitioner_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("practitioners.id", ondelete="RESTRICT"), nullable=False
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("locations.id", ondelete="SET NULL")
    )
    time_slot_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("time_slots.id", ondelete="SET NULL")
    )
    shared_slot: Mapped[bool] = mapped_column(nullable=False, default=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=AppointmentStatus.BOOKED.value)
    appointment_type: Mapped[str | None] = mapped_column(String(64))
    reason_text: Mapped[str | None] = mapped_column(Text)
    source_channel: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    workflow_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
