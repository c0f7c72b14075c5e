"""Patient request and response shapes, named as in the reference."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, computed_field, field_validator, model_validator

from core.languages import LanguageTag
from core.pagination import MAX_PAGE, MAX_PAGE_SIZE, Page
from domain.enums import Channel, Gender, PatientStatus
from domain.schemas import Email, FreeJson, NotNull, PhoneNumber, RequestModel, ResponseModel

MRN_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9 ._/-]*$")
OLDEST_BIRTH_YEAR = 1875


def _mrn(value: str) -> str:
    """Letters, digits and ' ._/-', starting with a letter or digit; case-insensitive (stored upper-case).

    Uniqueness then holds regardless of case."""
    value = value.upper()
    if not MRN_PATTERN.match(value):
        raise ValueError("must start with a letter or digit and contain only letters, digits, ' ._/-'")
    return value


def _birth_date(value: date) -> date:
    """Not in the future, nor before 1875."""
    if value > datetime.now(UTC).date():
        raise ValueError("cannot be in the future")
    if value.year < OLDEST_BIRTH_YEAR:
        raise ValueError(f"cannot be before {OLDEST_BIRTH_YEAR}")
    return value


def _timezone(value: str) -> str:
    """An IANA time zone name (`America/New_York`)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("is not an IANA time zone (e.g. 'America/New_York')") from exc
    return value


MRN = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_mrn)]
"""A medical record number, unique within the tenant, stored upper-case."""
BirthDate = Annotated[date, AfterValidator(_birth_date)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
OptionalName = Annotated[str, Field(max_length=100)] | None


class PatientCreate(RequestModel):
    """Body of `POST /patients`. New patients are always `active`; the MRN is generated when omitted."""

    tenant_id: uuid.UUID | None = Field(default=None, description="Your own tenant's id, or omitted")
    mrn: MRN | None = Field(default=None, description="Medical record number; generated when omitted")
    first_name: Name
    middle_name: OptionalName = None
    last_name: Name
    date_of_birth: BirthDate | None = None
    gender: Gender | None = None
    phone_primary: PhoneNumber | None = Field(default=None, description="Any common notation; stored E.164")
    phone_secondary: PhoneNumber | None = None
    email_primary: Email | None = None
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, max_length=100)
    preferred_language: LanguageTag | None = None
    preferred_channel: Channel | None = None
    timezone: TimeZoneName | None = Field(default=None, description="IANA zone; the tenant's when omitted")
    meta_data: FreeJson = Field(default_factory=dict)


NOT_NULLABLE_ON_UPDATE = ("mrn", "first_name", "last_name", "status")


class PatientUpdate(RequestModel):
    """Body of `PATCH /patients/{id}`: every field optional, only those sent change."""

    mrn: Annotated[MRN | None, NotNull] = None
    first_name: Annotated[Name | None, NotNull] = None
    middle_name: OptionalName = None
    last_name: Annotated[Name | None, NotNull] = None
    date_of_birth: BirthDate | None = None
    gender: Gender | None = None
    phone_primary: PhoneNumber | None = None
    phone_secondary: PhoneNumber | None = None
    email_primary: Email | None = None
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, max_length=100)
    preferred_language: LanguageTag | None = None
    preferred_channel: Channel | None = None
    timezone: TimeZoneName | None = None
    status: Annotated[PatientStatus | None, NotNull] = None
    meta_data: FreeJson | None = None

    @field_validator(*NOT_NULLABLE_ON_UPDATE, mode="before")
    @classmethod
    def _required_fields_are_not_cleared(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


def full_name_of(first_name: str, middle_name: str | None, last_name: str) -> str:
    """How a patient's name is displayed: first, middle (when known) and last name."""
    return " ".join(part for part in (first_name, middle_name, last_name) if part)


def age_on(date_of_birth: date | None, today: date) -> int | None:
    """Completed years of age on `today`, or None when the date of birth is unknown."""
    if date_of_birth is None:
        return None
    before_birthday = (today.month, today.day) < (date_of_birth.month, date_of_birth.day)
    return today.year - date_of_birth.year - before_birthday


class PatientSimpleResponse(ResponseModel):
    """The fields that identify a patient in lists and search results."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    mrn: str
    first_name: str
    middle_name: str | None
    last_name: str
    date_of_birth: date | None
    gender: Gender | None
    phone_primary: str | None
    email_primary: str | None
    city: str | None
    preferred_channel: Channel | None
    status: PatientStatus
    merged_into_id: uuid.UUID | None
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def full_name(self) -> str:
        """First, middle and last name."""
        return full_name_of(self.first_name, self.middle_name, self.last_name)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def age(self) -> int | None:
        """Age in completed years (UTC date), or null when the date of birth is unknown."""
        return age_on(self.date_of_birth, datetime.now(UTC).date())


class PatientResponse(PatientSimpleResponse):
    """A patient's full demographics, contact details and record state."""

    phone_secondary: str | None
    address_line1: str | None
    address_line2: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    preferred_language: str | None
    timezone: str | None
    merged_at: datetime | None
    meta_data: dict[str, Any]
    updated_at: datetime


class PatientSimpleListResponse(Page[PatientSimpleResponse]):
    """A page of patients."""


class PatientSearchType(StrEnum):
    """What `GET /patients/search` matches the query against."""

    NAME = "name"
    PHONE = "phone"
    MRN = "mrn"
    EMAIL = "email"


class PatientAdvancedSearch(RequestModel):
    """Body of `POST /patients/search`: every criterion optional, all given criteria must match."""

    first_name: str | None = Field(default=None, min_length=1, max_length=100, description="Prefix")
    last_name: str | None = Field(default=None, min_length=1, max_length=100, description="Prefix")
    date_of_birth: date | None = None
    phone: str | None = Field(default=None, min_length=2, max_length=32, description="Digits, partial")
    email: str | None = Field(default=None, min_length=2, max_length=254, description="Part of the address")
    mrn: str | None = Field(default=None, min_length=1, max_length=64, description="Prefix")
    gender: Gender | None = None
    status: PatientStatus | None = None
    city: str | None = Field(default=None, min_length=1, max_length=100, description="Exact, any case")
    created_from: datetime | None = None
    created_to: datetime | None = None
    page: int = Field(default=1, ge=1, le=MAX_PAGE)  # the GET lists' bound (a bigint OFFSET)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)

    @model_validator(mode="after")
    def _created_range_is_ordered(self) -> Self:
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise ValueError("created_from must not be after created_to")
        return self


class PatientDeleteResponse(ResponseModel):
    """The answer to `DELETE /patients/{id}` (a soft delete)."""

    success: bool = True
    message: str = "Patient deleted successfully"
    patient_id: uuid.UUID


class DuplicateReason(StrEnum):
    """Why a record may be the same person."""

    SAME_PHONE = "same_phone"
    SAME_EMAIL = "same_email"
    SAME_DOB_SIMILAR_NAME = "same_dob_similar_name"
    SAME_DATE_OF_BIRTH = "same_date_of_birth"
    SIMILAR_NAME = "similar_name"


class DuplicateCandidate(ResponseModel):
    """A record that may be the same person, with how sure we are and why."""

    patient: PatientSimpleResponse
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[DuplicateReason]


class PatientDemographicsResponse(ResponseModel):
    """Counts of the tenant's patients (merged duplicates excluded), broken down several ways."""

    total: int
    by_status: dict[str, int]
    by_gender: dict[str, int] = Field(description="`unspecified` counts patients with no gender")
    by_age_group: dict[str, int] = Field(description="0-17, 18-34, 35-49, 50-64, 65+ and unknown")
    by_preferred_channel: dict[str, int]
    by_preferred_language: dict[str, int]
    new_this_month: int = Field(description="Registered since the 1st of this month (tenant's time zone)")
