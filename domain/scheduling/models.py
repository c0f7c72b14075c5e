"""Locations, time slots and appointments, with the database's no-double-booking guarantees."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
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

from core.database import Base, TenantScoped, Versioned
from domain.enums import ACTIVE_APPOINTMENT_STATUSES, AppointmentStatus, Channel, SlotStatus, sql_in
from domain.identifiers import ExternalIdentifier, owner_column


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
        # A practitioner's slots never overlap one another (open or blocked).
        ExcludeConstraint(
            ("practitioner_id", "="),
            (text("tstzrange(start_time, end_time, '[)')"), "&&"),
            name="ex_time_slots_practitioner_overlap",
            using="gist",
        ),
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


class Appointment(Versioned, TenantScoped, Base):
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
        # Cohort criteria ask, per patient, for a visit of a status since a moment (domain.cohorts.criteria).
        Index(
            "ix_appointments_tenant_patient_status_start", "tenant_id", "patient_id", "status", "start_time"
        ),
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
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class AppointmentIdentifier(ExternalIdentifier, Base):
    """An identifier another system gives the appointment (the EHR's id); unique per tenant."""

    __tablename__ = "appointment_identifiers"
    __owner__ = "appointment"

    appointment_id: Mapped[uuid.UUID] = owner_column("appointments")


CONVERSATION_STATUSES = ("active", "booked", "expired", "closed")
WAITLIST_STATUSES = ("waiting", "offered", "booked", "removed")
OFFER_STATUSES = ("offered", "accepted", "taken", "declined", "expired")
PARTS_OF_DAY = ("any", "morning", "afternoon", "evening")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class BookingConversation(TenantScoped, Base):
    """A patient's booking chat (e.g. WhatsApp): the options offered, held until `expires_at`."""

    __tablename__ = "booking_conversations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(CONVERSATION_STATUSES)})", name="status"),
        CheckConstraint(f"channel IN ({sql_in(Channel)})", name="channel"),
        Index("ix_booking_conversations_patient_status", "patient_id", "status"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default=Channel.WHATSAPP.value)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    # What the patient asked for: practitioner_id, speciality, start_date, end_date, part_of_day.
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # The slot ids currently offered, in the order the patient sees them (option 1 first).
    offered_slot_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    hold_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("appointments.id", ondelete="SET NULL")
    )
    workflow_id: Mapped[str | None] = mapped_column(String(100))


class SlotHold(TenantScoped, Base):
    """A slot kept aside for one conversation's offer until it expires or is released."""

    __tablename__ = "slot_holds"
    __table_args__ = (
        Index("ix_slot_holds_slot_expires", "time_slot_id", "expires_at"),
        Index("ix_slot_holds_conversation", "conversation_id"),
    )

    time_slot_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("time_slots.id", ondelete="CASCADE"), nullable=False
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("booking_conversations.id", ondelete="CASCADE"), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WaitlistEntry(TenantScoped, Base):
    """A patient waiting for an earlier time with a practitioner (or any of a speciality) in a date range."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(WAITLIST_STATUSES)})", name="status"),
        CheckConstraint("practitioner_id IS NOT NULL OR speciality IS NOT NULL", name="has_target"),
        CheckConstraint("end_date >= start_date", name="dates_ordered"),
        CheckConstraint(f"part_of_day IN ({_in(PARTS_OF_DAY)})", name="part_of_day"),
        Index("ix_waitlist_entries_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_waitlist_entries_patient", "patient_id"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("practitioners.id", ondelete="CASCADE")
    )
    speciality: Mapped[str | None] = mapped_column(String(100))
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)
    appointment_type: Mapped[str | None] = mapped_column(String(64))
    part_of_day: Mapped[str] = mapped_column(String(16), nullable=False, default="any", server_default="any")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="waiting")
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("appointments.id", ondelete="SET NULL")
    )


class WaitlistOffer(TenantScoped, Base):
    """A freed time offered to one waitlisted patient, in one wave, until it expires or is taken."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(OFFER_STATUSES)})", name="status"),
        Index("ix_waitlist_offers_patient_status", "patient_id", "status"),
        Index("ix_waitlist_offers_cancelled_appointment", "cancelled_appointment_id"),
        # The backfill's idempotency key: one offer per waitlist entry per freed time.
        UniqueConstraint(
            "cancelled_appointment_id", "waitlist_entry_id", name="uq_waitlist_offers_slot_entry"
        ),
    )

    waitlist_entry_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("waitlist_entries.id", ondelete="CASCADE"), nullable=False
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    # The cancelled appointment whose time is offered: the backfill workflow is keyed by it.
    cancelled_appointment_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("practitioners.id", ondelete="CASCADE"), nullable=False
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("locations.id", ondelete="SET NULL")
    )
    time_slot_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("time_slots.id", ondelete="SET NULL")
    )
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    wave: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="offered")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("appointments.id", ondelete="SET NULL")
    )


# FHIR searches page in `_lastUpdated` order (and EHRs sync by it): the tenant's rows by last change.
Index("ix_appointments_tenant_updated", Appointment.tenant_id, Appointment.updated_at, Appointment.id)
