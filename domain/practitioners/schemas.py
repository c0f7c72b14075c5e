"""Practitioner request and response shapes, named as in the reference."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, computed_field

from core.pagination import Page
from domain.enums import Gender
from domain.schemas import Email, FreeJson, PhoneNumber, RequestModel, ResponseModel


class PractitionerBase(RequestModel):
    """Fields a client may set on a practitioner."""

    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    middle_name: str | None = Field(default=None, max_length=100)
    gender: Gender | None = None
    qualification: str | None = Field(default=None, max_length=200)
    speciality: str | None = Field(default=None, max_length=100)
    sub_speciality: str | None = Field(default=None, max_length=100)
    license_number: str | None = Field(default=None, max_length=64)
    registration_number: str | None = Field(default=None, max_length=64)
    phone_primary: PhoneNumber | None = None
    email_primary: Email | None = None
    is_active: bool = True
    meta_data: FreeJson = Field(default_factory=dict)


class PractitionerCreate(PractitionerBase):
    """Body of `POST /practitioners`; `tenant_id` may be omitted and must otherwise be the caller's."""

    tenant_id: uuid.UUID | None = None


class PractitionerUpdate(RequestModel):
    """Body of `PATCH /practitioners/{id}`: every field optional, only those sent change."""

    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    middle_name: str | None = Field(default=None, max_length=100)
    gender: Gender | None = None
    qualification: str | None = Field(default=None, max_length=200)
    speciality: str | None = Field(default=None, max_length=100)
    sub_speciality: str | None = Field(default=None, max_length=100)
    license_number: str | None = Field(default=None, max_length=64)
    registration_number: str | None = Field(default=None, max_length=64)
    phone_primary: PhoneNumber | None = None
    email_primary: Email | None = None
    is_active: bool | None = None
    meta_data: FreeJson | None = None


def display_name(first_name: str, last_name: str) -> str:
    """How a practitioner is shown to patients and in dropdowns."""
    return f"Dr. {first_name} {last_name}"


class PractitionerResponse(ResponseModel):
    """A practitioner as the API returns it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    first_name: str
    middle_name: str | None
    last_name: str
    gender: Gender | None
    qualification: str | None
    speciality: str | None
    sub_speciality: str | None
    license_number: str | None
    registration_number: str | None
    phone_primary: str | None
    email_primary: str | None
    is_active: bool
    meta_data: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def name(self) -> str:
        """Display name, e.g. "Dr. John Smith"."""
        return display_name(self.first_name, self.last_name)


class PractitionerListResponse(Page[PractitionerResponse]):
    """A page of practitioners."""


class PractitionerSimpleResponse(ResponseModel):
    """Minimal practitioner data for dropdowns."""

    id: uuid.UUID
    name: str
    speciality: str | None
    is_active: bool
