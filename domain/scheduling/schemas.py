"""Scheduling request and response shapes (locations, time slots, appointments), named as in the reference."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import AwareDatetime, Field, field_validator, model_validator

from core.pagination import Page
from domain.enums import AppointmentStatus, Channel, SlotStatus
from domain.schemas import PhoneNumber, RequestModel, ResponseModel
from domain.tenants.schemas import validate_timezone

# ---------------------------------------------------------------- locations


class LocationCreate(RequestModel):
    """Body of `POST /locations`."""

    tenant_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=400)
    phone: PhoneNumber | None = None
    timezone: str = Field(default="UTC", description="IANA time zone: defines the clinic's local day")
    is_active: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return validate_timezone(value)


class LocationUpdate(RequestModel):
    """Body of `PATCH /locations/{id}`: only the fields sent change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=400)
    phone: PhoneNumber | None = None
    timezone: str | None = None
    is_active: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)


class LocationResponse(ResponseModel):
    """A location as the API returns it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    address: str | None
    phone: str | None
    timezone: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class LocationListResponse(Page[LocationResponse]):
    """A page of locations."""


# ---------------------------------------------------------------- time slots


class TimeSlotCreate(RequestModel):
    """Body of `POST /time-slots`: one bookable window of a practitioner."""

    tenant_id: uuid.UUID | None = None
    practitioner_id: uuid.UUID
    location_id: uuid.UUID | None = None
    start_time: AwareDatetime
    end_time: AwareDatetime
    capacity: int = Field(default=1, ge=1, le=500)
    status: SlotStatus = SlotStatus.OPEN

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class TimeSlotUpdate(RequestModel):
    """Body of `PATCH /time-slots/{id}`: capacity and location (times are fixed once created)."""

    location_id: uuid.UUID | None = None
    capacity: int | None = Field(default=None, ge=1, le=500)


class TimeSlotResponse(ResponseModel):
    """A time slot with its capacity and how much of it is booked."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    practitioner_id: uuid.UUID
    location_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    capacity: int
    booked_count: int
    status: SlotStatus
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        """Places left."""
        return self.capacity - self.booked_count if self.status == SlotStatus.OPEN else 0


class TimeSlotListResponse(Page[TimeSlotResponse]):
    """A page of time slots."""


# ---------------------------------------------------------------- appointments


class AppointmentDirectCreate(RequestModel):
    """Body of `POST /appointments`: by `time_slot_id`, or `practitioner_id` + `start_time` + `end_time`."""

    tenant_id: uuid.UUID | None = None
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    time_slot_id: uuid.UUID | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    appointment_type: str | None = Field(default=None, max_length=64)
    reason_text: str | None = Field(default=None, max_length=2000)
    source_channel: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=4000)
    meta_data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _slot_or_times(self) -> Self:
        if self.time_slot_id is None:
            if self.practitioner_id is None or self.start_time is None or self.end_time is None:
                raise ValueError("give time_slot_id, or practitioner_id with start_time and end_time")
        if (self.start_time is None) != (self.end_time is None):
            raise ValueError("start_time and end_time go together")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class AppointmentUpdate(RequestModel):
    """Body of `PATCH /appointments/{id}`: status transitions, reschedules (new times or slot), details."""

    status: AppointmentStatus | None = None
    time_slot_id: uuid.UUID | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    location_id: uuid.UUID | None = None
    appointment_type: str | None = Field(default=None, max_length=64)
    reason_text: str | None = Field(default=None, max_length=2000)
    source_channel: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=4000)
    cancellation_reason: str | None = Field(default=None, max_length=2000)
    meta_data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent_reschedule(self) -> Self:
        if (self.start_time is None) != (self.end_time is None):
            raise ValueError("start_time and end_time go together")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        if self.time_slot_id is not None and self.start_time is not None:
            raise ValueError("give either time_slot_id or start_time/end_time, not both")
        return self


class AppointmentResponse(ResponseModel):
    """An appointment as the API returns it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID
    location_id: uuid.UUID | None
    time_slot_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    status: AppointmentStatus
    appointment_type: str | None
    reason_text: str | None
    source_channel: str | None
    notes: str | None
    confirmed_at: datetime | None
    checked_in_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancellation_reason: str | None
    meta_data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PatientSummary(ResponseModel):
    """Just enough of the patient for a clinic's day list: who, not their record."""

    id: uuid.UUID
    mrn: str
    name: str


class PractitionerSummary(ResponseModel):
    """The practitioner as shown on a schedule."""

    id: uuid.UUID
    name: str
    speciality: str | None


class LocationSummary(ResponseModel):
    """Where the appointment happens."""

    id: uuid.UUID
    name: str
    timezone: str


class AppointmentDetailResponse(AppointmentResponse):
    """An appointment with patient, practitioner and location summaries embedded."""

    patient: PatientSummary | None = None
    practitioner: PractitionerSummary | None = None
    location: LocationSummary | None = None


class AppointmentListResponse(Page[AppointmentResponse]):
    """A page of appointments."""


class AppointmentStats(ResponseModel):
    """Counts for dashboards, with exactly the reference's keys."""

    total: int
    today: int
    upcoming: int
    completed: int
    cancelled: int
    no_show: int
    by_status: dict[str, int]
    by_type: dict[str, int]


class ConflictingAppointment(ResponseModel):
    """One appointment that overlaps the proposed time."""

    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    status: AppointmentStatus
    start_time: datetime
    end_time: datetime


class ConflictCheckResponse(ResponseModel):
    """The answer of `GET /appointments/conflicts`."""

    has_conflict: bool
    conflict_count: int
    conflicting_appointments: list[ConflictingAppointment]


# ---------------------------------------------------------------- conversational booking


class PartOfDay(StrEnum):
    """When in the clinic's local day the patient would like to come."""

    ANY = "any"
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


class FindSlotsRequest(RequestModel):
    """Body of `POST /appointments/find-slots`: who is asking, and for what."""

    tenant_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    phone: PhoneNumber | None = None
    practitioner_id: uuid.UUID | None = None
    speciality: str | None = Field(default=None, max_length=100)
    start_date: date | None = None
    end_date: date | None = None
    part_of_day: PartOfDay = PartOfDay.ANY
    max_options: int = Field(default=3, ge=1, le=9)
    hold_minutes: int = Field(default=10, ge=1, le=24 * 60)
    channel: Channel = Channel.WHATSAPP

    @model_validator(mode="after")
    def _who_and_what(self) -> Self:
        if self.patient_id is None and self.phone is None:
            raise ValueError("give patient_id or phone")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class OfferedSlot(ResponseModel):
    """One numbered option sent to the patient."""

    option: int
    time_slot_id: uuid.UUID
    practitioner_id: uuid.UUID
    location_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime


class FindSlotsResponse(ResponseModel):
    """The conversation started and the options offered (and held until `expires_at`)."""

    conversation_id: uuid.UUID
    patient_id: uuid.UUID
    status: str
    expires_at: datetime
    options: list[OfferedSlot]
    message_sent: bool


class SelectSlotRequest(RequestModel):
    """Body of `POST /appointments/select-slot`: the patient's reply to the offered options."""

    tenant_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    phone: PhoneNumber | None = None
    reply: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _which_conversation(self) -> Self:
        if self.conversation_id is None and self.patient_id is None and self.phone is None:
            raise ValueError("give conversation_id, patient_id or phone")
        return self


class SelectSlotOutcome(StrEnum):
    """What became of the reply."""

    BOOKED = "booked"
    NOT_UNDERSTOOD = "not_understood"
    SLOT_TAKEN = "slot_taken"
    NO_SLOTS = "no_slots"


class SelectSlotResponse(ResponseModel):
    """The outcome: the booked appointment, or the options offered now."""

    conversation_id: uuid.UUID
    outcome: SelectSlotOutcome
    status: str
    appointment: AppointmentResponse | None = None
    options: list[OfferedSlot] = Field(default_factory=list)
    expires_at: datetime | None = None


# ---------------------------------------------------------------- waitlist


class WaitlistStatus(StrEnum):
    """Where a waitlist entry stands: waiting, holding an offer, booked, or taken off the list."""

    WAITING = "waiting"
    OFFERED = "offered"
    BOOKED = "booked"
    REMOVED = "removed"


class OfferStatus(StrEnum):
    """What became of one offer of a freed time."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    TAKEN = "taken"
    DECLINED = "declined"
    EXPIRED = "expired"


class WaitlistEntryCreate(RequestModel):
    """Body of `POST /waitlist`: a patient waiting for a practitioner or speciality within dates."""

    tenant_id: uuid.UUID | None = None
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID | None = None
    speciality: str | None = Field(default=None, max_length=100)
    start_date: date
    end_date: date
    part_of_day: PartOfDay = PartOfDay.ANY
    appointment_type: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _target_and_dates(self) -> Self:
        if self.practitioner_id is None and not self.speciality:
            raise ValueError("give practitioner_id or speciality")
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class WaitlistEntryResponse(ResponseModel):
    """A waitlist entry."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    patient_id: uuid.UUID
    practitioner_id: uuid.UUID | None
    speciality: str | None
    start_date: date
    end_date: date
    part_of_day: PartOfDay
    appointment_type: str | None
    status: WaitlistStatus
    appointment_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class WaitlistListResponse(Page[WaitlistEntryResponse]):
    """A page of waitlist entries."""


class WaitlistOfferResponse(ResponseModel):
    """A freed time offered to a waitlisted patient."""

    id: uuid.UUID
    waitlist_entry_id: uuid.UUID
    patient_id: uuid.UUID
    cancelled_appointment_id: uuid.UUID
    practitioner_id: uuid.UUID
    location_id: uuid.UUID | None
    time_slot_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    wave: int
    status: OfferStatus
    expires_at: datetime
    appointment_id: uuid.UUID | None
    created_at: datetime


class WaitlistOfferListResponse(Page[WaitlistOfferResponse]):
    """A page of waitlist offers."""
