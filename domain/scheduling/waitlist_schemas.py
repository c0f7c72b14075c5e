"""Waitlist shapes: entries, the offers of freed times, and the statuses of both.

Apart from the appointment shapes (`schemas`) because only the waitlist (`waitlist`, `backfill`) and its
endpoints use them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from core.pagination import Page
from domain.scheduling.slot_schemas import PartOfDay
from domain.schemas import RequestModel, ResponseModel


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
