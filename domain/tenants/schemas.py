"""Tenant settings that later domains read (quiet hours, SLA targets, caps), with their defaults."""

from __future__ import annotations

import uuid
from datetime import time
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator

from core.languages import ENGLISH, LanguageTag
from domain.enums import TicketPriority
from domain.schemas import NotNull, RequestModel


class QuietHours(BaseModel):
    """Automated messages wait while the patient's local clock is inside this window."""

    enabled: bool = True
    start: time = time(21, 0)
    end: time = time(8, 0)


class SlaTarget(BaseModel):
    """Response and resolution targets for one ticket priority, in business minutes."""

    response_minutes: int = Field(gt=0)
    resolution_minutes: int = Field(gt=0)


def _default_sla() -> dict[TicketPriority, SlaTarget]:
    return {
        TicketPriority.URGENT: SlaTarget(response_minutes=30, resolution_minutes=4 * 60),
        TicketPriority.HIGH: SlaTarget(response_minutes=2 * 60, resolution_minutes=8 * 60),
        TicketPriority.MEDIUM: SlaTarget(response_minutes=8 * 60, resolution_minutes=3 * 8 * 60),
        TicketPriority.LOW: SlaTarget(response_minutes=2 * 8 * 60, resolution_minutes=5 * 8 * 60),
    }


class BusinessHours(BaseModel):
    """When the clinic's support team works (SLA clocks run only then)."""

    start: time = time(8, 0)
    end: time = time(18, 0)
    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday")


class FrequencyCap(BaseModel):
    """At most `max_messages` automated messages to one patient within `per_hours`."""

    max_messages: int = Field(default=5, ge=1)
    per_hours: int = Field(default=24, ge=1)


class WaitlistSettings(BaseModel):
    """How a freed appointment time is offered: to `wave_size` matching patients at a time, each offer held
    for `hold_minutes` before the next wave."""

    wave_size: int = Field(default=3, ge=1, le=50)
    hold_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)


class TenantSettings(BaseModel):
    """Everything a tenant may tune; stored as JSON on the tenant row, defaults filled on read."""

    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    sla: dict[TicketPriority, SlaTarget] = Field(default_factory=_default_sla)
    frequency_cap: FrequencyCap = Field(default_factory=FrequencyCap)
    reminder_offsets_minutes: list[int] = Field(default_factory=lambda: [24 * 60, 2 * 60])
    whatsapp_fallback_minutes: int = Field(default=30, ge=1)
    waitlist: WaitlistSettings = Field(default_factory=WaitlistSettings)
    # Messages go in the patient's preferred language, else this one, else English (templates' variants).
    default_language: LanguageTag = ENGLISH


def validate_timezone(value: str) -> str:
    """Accept only IANA time zone names."""
    if value not in available_timezones():
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/London')")
    return value


class TenantCreate(BaseModel):
    """What `prm tenant create` takes."""

    name: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"
    settings: TenantSettings = Field(default_factory=TenantSettings)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return validate_timezone(value)


class TenantResponse(BaseModel):
    """The caller's tenant as the API shows it: who it is and the settings it may change here."""

    id: uuid.UUID
    name: str
    timezone: str
    default_language: str = Field(description="The language messages fall back to (BCP 47)")


class TenantUpdate(RequestModel):
    """What an administrator may change of their tenant (PATCH: only the fields sent)."""

    default_language: Annotated[LanguageTag | None, NotNull] = Field(
        default=None,
        description="The tenant's default message language: used when a patient's preferred language has "
        "no text (a BCP 47 tag such as 'es' or 'es-MX', normalised)",
    )
