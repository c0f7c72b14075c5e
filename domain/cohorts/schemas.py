"""Cohort request and response shapes, and the declarative `criteria` a cohort selects patients by.

Every criterion is optional and the ones given combine with AND; `{}` selects every patient of the tenant
(merged duplicates never). Unknown keys, out-of-range numbers, empty lists and unknown values are 422,
naming the field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from core.languages import LanguageTag
from core.pagination import Page
from domain.enums import Channel, Gender, PatientStatus
from domain.journeys.trigger_conditions import AgeRange
from domain.schemas import NotNull, RequestModel, ResponseModel

MAX_DAYS = 36_500  # a hundred years: any look-back a clinic means, far inside what date arithmetic holds
MAX_LIST = 100

Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
Ids = Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_LIST)]
Speciality = Annotated[str, Field(min_length=1, max_length=100)]


class LastVisit(RequestModel):
    """When the patient was last seen (a completed appointment). Exactly one of:
    `not_within_days`: no completed appointment in the last N days (patients never seen match too);
    `never`: no completed appointment at all."""

    not_within_days: Days | None = None
    never: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.not_within_days is None) == (self.never is None):
            raise ValueError("give exactly one of not_within_days or never")
        return self


class SeenBy(RequestModel):
    """The patient had a completed appointment with one of `practitioner_ids`, with a practitioner of one
    of `specialities` (ignoring case), at one of `location_ids`; each list given narrows the same
    appointment (one appointment must match all of them). Within the last `within_days` when given."""

    practitioner_ids: Ids | None = None
    specialities: Annotated[list[Speciality], Field(min_length=1, max_length=MAX_LIST)] | None = None
    location_ids: Ids | None = None
    within_days: Days | None = None

    @model_validator(mode="after")
    def _names_someone(self) -> Self:
        if self.practitioner_ids is None and self.specialities is None and self.location_ids is None:
            raise ValueError("give practitioner_ids, specialities or location_ids")
        return self


class JourneyState(StrEnum):
    """Which of a patient's journey instances count: only running ones, or any they ever had."""

    ACTIVE = "active"
    EVER = "ever"


class JourneyMembership(RequestModel):
    """Instances of `journey_ids` (any journey when omitted) that are `active` now, or that ever existed."""

    journey_ids: Ids | None = None
    state: JourneyState = JourneyState.ACTIVE


class CohortCriteria(RequestModel):
    """Which patients a cohort holds: every criterion given must hold (AND); a list matches any of its
    values (OR)."""

    age: AgeRange | None = Field(
        default=None,
        description="Age in whole years on the tenant's today, `min` and `max` included; a patient without a "
        "birth date never matches",
    )
    gender: Annotated[list[Gender], Field(min_length=1, max_length=len(Gender))] | None = None
    languages: Annotated[list[LanguageTag], Field(min_length=1, max_length=MAX_LIST)] | None = Field(
        default=None,
        description="Preferred language: a tag matches itself and its regional forms ('es' matches 'es-MX')",
    )
    status: PatientStatus | None = None
    last_visit: LastVisit | None = None
    has_upcoming_appointment: bool | None = Field(
        default=None, description="true: a booked, confirmed or checked-in appointment ahead; false: none"
    )
    seen_by: SeenBy | None = None
    on_journey: JourneyMembership | None = None
    not_on_journey: JourneyMembership | None = None
    consent: Channel | None = Field(
        default=None, description="A channel the patient has not opted out of (no STOP on record)"
    )

    def stored(self) -> dict[str, Any]:
        """The criteria as a cohort keeps them: JSON, the criteria not given left out."""
        return self.model_dump(mode="json", exclude_none=True)


class CohortCreate(RequestModel):
    """Body of `POST /cohorts`; `tenant_id` may be omitted and must otherwise be the caller's."""

    tenant_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=200, description="Unique in your tenant, ignoring case")
    description: str | None = Field(default=None, max_length=5000)
    criteria: CohortCriteria


class CohortUpdate(RequestModel):
    """Body of `PATCH /cohorts/{id}`: only the fields sent change; `criteria` is replaced as a whole."""

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    criteria: Annotated[CohortCriteria | None, NotNull] = None

    @field_validator("name", "criteria")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # only a value sent is validated: `null` cannot clear a required field
            raise ValueError("may be omitted but not null")
        return value


class CohortResponse(ResponseModel):
    """A cohort as the API returns it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    description: str | None
    criteria: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CohortListResponse(Page[CohortResponse]):
    """A page of cohorts."""


class CohortMember(ResponseModel):
    """A patient in a cohort's preview."""

    id: uuid.UUID
    first_name: str
    last_name: str


class CohortPreview(ResponseModel):
    """How many patients the cohort holds now, and the first of them by last name, first name."""

    count: int
    sample: list[CohortMember]
