"""Location and time-slot request and response shapes, and the parts of the day a slot search can ask for.

Apart from the appointment shapes (`schemas`) because they describe what the clinic offers, not a booking;
the /locations and /time-slots routers, `slots`, and the booking and waitlist shapes use them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, field_validator, model_validator

from core.pagination import Page
from domain.enums import SlotStatus
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
        """An IANA time zone name (`Europe/London`)."""
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
        """An IANA time zone name (`Europe/London`)."""
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


# ---------------------------------------------------------------- parts of the day


class PartOfDay(StrEnum):
    """When in the clinic's local day the patient would like to come."""

    ANY = "any"
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"
