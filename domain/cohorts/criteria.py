"""A cohort's criteria as one SQL statement: `members_query` selects the ids of the patients who meet them.

Every criterion is SQL (comparisons on `patients`, its last completed visit included, which triggers keep
on the patient's row; EXISTS / NOT EXISTS over the patient's appointments, journey instances and
opt-outs): nothing is filtered in Python, so counting a million patients is one statement. Each table the
statement reads is filtered by `tenant_id` explicitly, its subqueries included: the statement is equally
right run in a tenant-bound session (which adds the same filter again), in a system session, or inside
`insert(...).from_select(...)` (which the session does not scope).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    Select,
    and_,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.sql.elements import ColumnElement

from domain.cohorts.schemas import CohortCriteria, JourneyMembership, JourneyState, SeenBy
from domain.enums import ACTIVE_APPOINTMENT_STATUSES, AppointmentStatus, JourneyInstanceStatus
from domain.journeys.models import JourneyInstance
from domain.patients.models import ChannelConsent, Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant

COMPLETED = AppointmentStatus.COMPLETED.value
UPCOMING = [status.value for status in ACTIVE_APPOINTMENT_STATUSES]


def members_query(criteria: CohortCriteria, *, tenant_id: uuid.UUID, now: datetime) -> Select[uuid.UUID]:
    """`SELECT patients.id` of the tenant's patients (never merged duplicates) who meet every criterion at
    `now`; unordered (add an ORDER BY, a LIMIT or wrap it in a count as needed)."""
    conditions = [Patient.tenant_id == tenant_id, Patient.merged_into_id.is_(None)]
    conditions.extend(_conditions(criteria, tenant_id, now))
    return select(Patient.id).where(*conditions)


def _conditions(
    criteria: CohortCriteria, tenant_id: uuid.UUID, now: datetime
) -> Iterator[ColumnElement[bool]]:
    if criteria.age is not None:
        today = _tenant_today(tenant_id, now)
        if criteria.age.min is not None:  # had their min-th birthday by today
            yield Patient.date_of_birth <= _years_before(today, criteria.age.min)
        if criteria.age.max is not None:  # not yet had their (max + 1)-th
            yield Patient.date_of_birth > _years_before(today, criteria.age.max + 1)
    if criteria.gender is not None:
        yield Patient.gender.in_([gender.value for gender in criteria.gender])
    if criteria.languages is not None:
        yield or_(
            Patient.preferred_language.in_(criteria.languages),
            *(
                Patient.preferred_language.startswith(f"{tag}-", autoescape=True)
                for tag in criteria.languages
            ),
        )
    if criteria.status is not None:
        yield Patient.status == criteria.status.value
    if criteria.last_visit is not None:  # the stored latest completed visit (kept by triggers): no probe
        never = Patient.last_completed_visit_at.is_(None)
        if criteria.last_visit.not_within_days is None:
            yield never
        else:
            cutoff = now - timedelta(days=criteria.last_visit.not_within_days)
            yield or_(never, Patient.last_completed_visit_at <= cutoff)
    if criteria.has_upcoming_appointment is not None:
        upcoming = _appointment_exists(
            tenant_id, Appointment.status.in_(UPCOMING), Appointment.start_time > now
        )
        yield upcoming if criteria.has_upcoming_appointment else not_(upcoming)
    if criteria.seen_by is not None:
        yield _appointment_exists(tenant_id, *_seen_by(criteria.seen_by, tenant_id, now))
    if criteria.on_journey is not None:
        yield _journey_exists(criteria.on_journey, tenant_id)
    if criteria.not_on_journey is not None:
        yield not_(_journey_exists(criteria.not_on_journey, tenant_id))
    if criteria.consent is not None:
        yield not_(
            select(ChannelConsent.id)
            .where(
                ChannelConsent.tenant_id == tenant_id,
                ChannelConsent.patient_id == Patient.id,
                ChannelConsent.channel == criteria.consent.value,
                ChannelConsent.opted_out.is_(True),
            )
            .correlate(Patient)
            .exists()
        )


def _tenant_today(tenant_id: uuid.UUID, now: datetime) -> Any:
    """The tenant's calendar date at `now` (in its time zone), computed by the database."""
    local = func.timezone(Tenant.timezone, literal(now, DateTime(timezone=True)))
    return select(cast(local, Date)).where(Tenant.id == tenant_id).scalar_subquery()


def _years_before(day: Any, years: int) -> Any:
    """`day` minus whole years, as a date (29 February falls back to the 28th)."""
    return cast(day - func.make_interval(years, type_=INTERVAL), Date)


def _appointment_exists(tenant_id: uuid.UUID, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS an appointment of the patient (in the tenant) meeting `conditions`."""
    return (
        select(Appointment.id)
        .where(Appointment.tenant_id == tenant_id, Appointment.patient_id == Patient.id, *conditions)
        .correlate(Patient)
        .exists()
    )


def _seen_by(seen_by: SeenBy, tenant_id: uuid.UUID, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions on one completed appointment that `seen_by` asks for."""
    conditions: list[ColumnElement[bool]] = [Appointment.status == COMPLETED]
    if seen_by.within_days is not None:
        conditions.append(Appointment.start_time > now - timedelta(days=seen_by.within_days))
    if seen_by.practitioner_ids is not None:
        conditions.append(Appointment.practitioner_id.in_(seen_by.practitioner_ids))
    if seen_by.location_ids is not None:
        conditions.append(Appointment.location_id.in_(seen_by.location_ids))
    if seen_by.specialities is not None:
        of_speciality = select(Practitioner.id).where(
            Practitioner.tenant_id == tenant_id,
            func.lower(Practitioner.speciality).in_([s.lower() for s in seen_by.specialities]),
        )
        conditions.append(Appointment.practitioner_id.in_(of_speciality))
    return conditions


def _journey_exists(membership: JourneyMembership, tenant_id: uuid.UUID) -> ColumnElement[bool]:
    """EXISTS a journey instance of the patient (in the tenant) that `membership` counts."""
    conditions = [JourneyInstance.tenant_id == tenant_id, JourneyInstance.patient_id == Patient.id]
    if membership.journey_ids is not None:
        conditions.append(JourneyInstance.journey_id.in_(membership.journey_ids))
    if membership.state is JourneyState.ACTIVE:
        conditions.append(JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value)
    return select(JourneyInstance.id).where(and_(*conditions)).correlate(Patient).exists()
