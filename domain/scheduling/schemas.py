"""Appointment request and response shapes (booking, PATCH, day lists, stats, conflicts), as in the reference.

The other scheduling shapes sit beside their use cases: `slot_schemas` (locations, time slots, parts of
the day), `booking_schemas` (the booking conversation) and `waitlist_schemas`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

from pydantic import AwareDatetime, Field, model_validator

from core.pagination import Page
from domain.enums import AppointmentStatus
from domain.schemas import FreeJson, RequestModel, ResponseModel


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
    meta_data: FreeJson = Field(default_factory=dict)

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
    meta_data: FreeJson | None = None

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
