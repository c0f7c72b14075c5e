"""Conversational booking shapes: finding slots to offer, the patient's reply, what became of it.

Apart from the appointment shapes (`schemas`) because only the booking conversation (`booking`) and its
two endpoints use them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from domain.enums import Channel
from domain.scheduling.schemas import AppointmentResponse
from domain.scheduling.slot_schemas import PartOfDay
from domain.schemas import PhoneNumber, RequestModel, ResponseModel


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
