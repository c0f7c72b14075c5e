"""Patient queries (tenant-scoped by the session): lookup, search, demographics, locks and consents.

What a patient owns in the other domains (appointments, messages, ...) is queried in `domain.records`.

The quick search (`GET /patients/search`, its name search in `domain.patients.name_search`) and the list's
search are `domain.patients.reads`. The advanced search's email and phone conditions are written against
the trigram (GIN) indexes of the patients table, so they stay fast at a million patients: `LIKE '%...%'` on
the indexed expressions.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, case, cast, func, select, tuple_, update

from core.errors import NotFound, Unprocessable
from core.phones import digits_only
from core.repository import Repository
from domain.patients.models import ChannelConsent, Patient, full_name_expression
from domain.patients.schemas import PatientAdvancedSearch

PHONE_LIKE = re.compile(r"^[\d\s().+-]+$")
# Age groups of the demographics report: (name, first age *not* in the group).
AGE_GROUP_BOUNDS = (("0-17", 18), ("18-34", 35), ("35-49", 50), ("50-64", 65))
OLDEST_AGE_GROUP, UNKNOWN_AGE = "65+", "unknown"
UNSPECIFIED = "unspecified"  # the demographics key for a missing gender, channel or language
AGE_GROUPS = (*(name for name, _ in AGE_GROUP_BOUNDS), OLDEST_AGE_GROUP, UNKNOWN_AGE)
DEMOGRAPHIC_DIMENSIONS = ("status", "gender", "age_group", "preferred_channel", "preferred_language")


def full_name() -> ColumnElement[str]:
    """`lower(first_name || ' ' || last_name)`, exactly as the trigram index is built."""
    return full_name_expression(Patient)  # type: ignore[no-any-return]


def name_similarity(query: str) -> ColumnElement[float]:
    """pg_trgm similarity (0..1) of the full name to `query`."""
    return func.similarity(full_name(), query.lower())


class PatientRepository(Repository[Patient]):
    """Queries over patients and what they own."""

    model = Patient
    label = "Patient"

    async def get_for_update(self, patient_id: uuid.UUID) -> Patient:
        """The patient, row-locked until the transaction ends (serialises writes against merges)."""
        locked = await self.lock(patient_id)
        if patient_id not in locked:
            raise NotFound(f"{self.label} not found.")
        return locked[patient_id]

    async def lock(self, *patient_ids: uuid.UUID) -> dict[uuid.UUID, Patient]:
        """Row-lock the patients that exist, in id order (so concurrent callers never deadlock)."""
        stmt = (
            self.base()
            .where(Patient.id.in_(patient_ids))
            .order_by(Patient.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {p.id: p for p in (await self.session.scalars(stmt)).all()}

    async def by_mrn(self, mrn: str) -> Patient | None:
        """The patient with this MRN (as typed or upper-cased, as MRNs are stored)."""
        stmt = self.base().where(Patient.mrn.in_({mrn, mrn.upper()})).order_by(Patient.mrn.desc()).limit(1)
        return await self.session.scalar(stmt)

    def advanced(self, criteria: PatientAdvancedSearch) -> Select[Any]:
        """Patients matching every criterion given, ordered by last then first name."""
        conditions: list[ColumnElement[bool]] = []
        for prefix, column in (
            (criteria.first_name, Patient.first_name),
            (criteria.last_name, Patient.last_name),
        ):
            if prefix:
                # The substring test on the full name lets the trigram index narrow the rows first.
                conditions.append(full_name().contains(prefix.lower(), autoescape=True))
                conditions.append(func.lower(column).startswith(prefix.lower(), autoescape=True))
        if criteria.date_of_birth:
            conditions.append(Patient.date_of_birth == criteria.date_of_birth)
        if criteria.phone:
            digits = digits_only(criteria.phone)
            if len(digits) < 2:
                raise Unprocessable("A phone search needs at least 2 digits.", loc=("body", "phone"))
            conditions.append(Patient.phone_primary.contains(digits, autoescape=True))
        if criteria.email:
            email = criteria.email.lower()
            conditions.append(func.lower(Patient.email_primary).contains(email, autoescape=True))
        if criteria.mrn:
            conditions.append(Patient.mrn.startswith(criteria.mrn.upper(), autoescape=True))
        if criteria.gender:
            conditions.append(Patient.gender == criteria.gender)
        if criteria.status:
            conditions.append(Patient.status == criteria.status)
        if criteria.city:
            conditions.append(func.lower(Patient.city) == criteria.city.lower())
        if criteria.created_from:
            conditions.append(Patient.created_at >= criteria.created_from)
        if criteria.created_to:
            conditions.append(Patient.created_at <= criteria.created_to)
        return self.base().where(*conditions).order_by(Patient.last_name, Patient.first_name, Patient.id)

    async def redirect_merges(self, *, from_patient: uuid.UUID, to_patient: uuid.UUID) -> None:
        """Records merged into `from_patient` earlier now point straight at `to_patient`."""
        await self.session.execute(
            update(Patient)
            .where(Patient.merged_into_id == from_patient)
            .values(merged_into_id=to_patient)
            .execution_options(synchronize_session=False)
        )

    async def consents_of(self, *patient_ids: uuid.UUID) -> list[ChannelConsent]:
        """The channel consents of the given patients."""
        stmt = select(ChannelConsent).where(ChannelConsent.patient_id.in_(patient_ids))
        return list((await self.session.scalars(stmt)).all())

    async def demographics(self, tenant_timezone: str) -> list[dict[str, Any]]:
        """One row per (dimension, value) with its count, plus a totals row; merged duplicates excluded."""
        today = func.timezone(tenant_timezone, func.now())
        month_start = func.timezone(tenant_timezone, func.date_trunc("month", today))
        age = func.date_part("year", func.age(cast(today, Date), Patient.date_of_birth))
        age_group = case(
            (Patient.date_of_birth.is_(None), UNKNOWN_AGE),
            *((age < upper, group) for group, upper in AGE_GROUP_BOUNDS),
            else_=OLDEST_AGE_GROUP,
        )
        people = (
            select(
                Patient.status.label("status"),
                func.coalesce(Patient.gender, UNSPECIFIED).label("gender"),
                age_group.label("age_group"),
                func.coalesce(Patient.preferred_channel, UNSPECIFIED).label("preferred_channel"),
                func.coalesce(Patient.preferred_language, UNSPECIFIED).label("preferred_language"),
                (Patient.created_at >= month_start).label("is_new"),
            )
            .where(Patient.merged_into_id.is_(None))
            .subquery()
        )
        dimensions = [people.c[name] for name in DEMOGRAPHIC_DIMENSIONS]
        # One scan, grouped several ways at once; the empty grouping set is the totals row.
        stmt = select(
            *dimensions,
            func.count().label("count"),
            func.count().filter(people.c.is_new).label("new"),
        ).group_by(func.grouping_sets(*(tuple_(c) for c in dimensions), tuple_()))
        return [dict(row._mapping) for row in (await self.session.execute(stmt)).all()]
