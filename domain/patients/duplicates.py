"""Finding records that may be the same person, scored in SQL with pg_trgm.

A candidate shares the phone or the email, or has a similar name (trigram `%`), or was born the same day
with a name at least loosely alike. Each candidate's score is a weighted sum that stays within 0..1:

    0.35 * name similarity + 0.25 * same phone + 0.15 * same email + 0.25 * same date of birth

so a record with the same phone and date of birth outranks one whose name merely looks alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_

from domain.patients.models import Patient
from domain.patients.repository import PatientRepository, full_name
from domain.patients.schemas import DuplicateReason

NAME_WEIGHT, PHONE_WEIGHT, EMAIL_WEIGHT, DOB_WEIGHT = 0.35, 0.25, 0.15, 0.25
SIMILAR_NAME = 0.3  # pg_trgm's default `%` threshold
LOOSELY_SIMILAR_NAME = 0.2  # enough alongside a shared date of birth (e.g. "Jon Smyth" / "John Smith")


@dataclass(frozen=True)
class Duplicate:
    """A possible duplicate of a patient."""

    patient: Patient
    score: float
    reasons: list[DuplicateReason]


async def find_duplicates(repo: PatientRepository, patient: Patient, limit: int) -> list[Duplicate]:
    """Up to `limit` other unmerged records that may be the same person as `patient`, best first."""
    name = f"{patient.first_name} {patient.last_name}".lower()
    similarity = func.similarity(full_name(), name)
    same_phone = _same(Patient.phone_primary, patient.phone_primary)
    same_email = _same(
        func.lower(Patient.email_primary), patient.email_primary.lower() if patient.email_primary else None
    )
    same_dob = _same(Patient.date_of_birth, patient.date_of_birth)
    score = (
        NAME_WEIGHT * similarity
        + PHONE_WEIGHT * _as_number(same_phone)
        + EMAIL_WEIGHT * _as_number(same_email)
        + DOB_WEIGHT * _as_number(same_dob)
    ).label("score")
    stmt = (
        repo.base()
        .add_columns(
            similarity.label("similarity"),
            same_phone.label("same_phone"),
            same_email.label("same_email"),
            same_dob.label("same_dob"),
            score,
        )
        .where(
            Patient.id != patient.id,
            Patient.merged_into_id.is_(None),
            # Each branch can use an index: phone, email and date of birth b-trees, the name trigram GIN.
            or_(
                same_phone,
                same_email,
                full_name().op("%")(name),
                and_(same_dob, similarity >= LOOSELY_SIMILAR_NAME),
            ),
        )
        .order_by(score.desc(), Patient.id)
        .limit(limit)
    )
    rows = (await repo.session.execute(stmt)).all()
    return [
        Duplicate(patient=row[0], score=round(min(float(row.score), 1.0), 4), reasons=_reasons(row))
        for row in rows
    ]


def _same(column: Any, value: Any) -> ColumnElement[bool]:
    """`column = value`, or a constant false when the patient has no value to compare."""
    if value is None:
        return literal(False)
    return column == value  # type: ignore[no-any-return]


def _as_number(condition: ColumnElement[bool]) -> Any:
    """1.0 when `condition` holds, else 0.0."""
    return case((condition, 1.0), else_=0.0)


def _reasons(row: Any) -> list[DuplicateReason]:
    reasons: list[DuplicateReason] = []
    phone, email, dob, similarity = row.same_phone, row.same_email, row.same_dob, float(row.similarity)
    if phone:
        reasons.append(DuplicateReason.SAME_PHONE)
    if email:
        reasons.append(DuplicateReason.SAME_EMAIL)
    if dob and similarity >= LOOSELY_SIMILAR_NAME:
        reasons.append(DuplicateReason.SAME_DOB_SIMILAR_NAME)
    elif dob:
        reasons.append(DuplicateReason.SAME_DATE_OF_BIRTH)
    if similarity >= SIMILAR_NAME:
        reasons.append(DuplicateReason.SIMILAR_NAME)
    return reasons


# A probable match (the same person): a score of at least PROBABLE_MATCH with the same date of birth and a
# similar name (the same name and birthday alone score 0.6). Without the birthday (a father and son of one
# name sharing a phone) it is only possible.
PROBABLE_MATCH = 0.6
POSSIBLE_MATCH = 0.35  # worth a coordinator's look, not enough to decide alone


@dataclass(frozen=True)
class RegistrationMatch:
    """What the duplicate matcher says of a patient an external system registers: `probable` is an existing
    record that is the same person (link to it, never register twice); `possible` are records a
    coordinator should review (register, and flag them)."""

    probable: Patient | None
    possible: list[Patient]


async def match_registration(
    repo: PatientRepository, candidate: Patient, limit: int = 3
) -> RegistrationMatch:
    """Whether a patient about to be registered from an EHR (FHIR, HL7) is already known (see
    `PROBABLE_MATCH`), or may be (`POSSIBLE_MATCH`). `candidate` is the unsaved record."""
    duplicates = await find_duplicates(repo, candidate, limit=limit)
    best = duplicates[0] if duplicates else None
    if (
        best is not None
        and best.score >= PROBABLE_MATCH
        and DuplicateReason.SAME_DOB_SIMILAR_NAME in best.reasons
    ):
        return RegistrationMatch(probable=best.patient, possible=[])
    return RegistrationMatch(
        probable=None, possible=[d.patient for d in duplicates if d.score >= POSSIBLE_MATCH]
    )
