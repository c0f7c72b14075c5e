"""The patient an HL7 v2 message is about: PID read into our fields (an unusable optional field, such as a
placeholder phone, a language given by name or an unknown sex code, dropped with a warning, or mapped
through the feed's code maps), matched by its PID-3 identifiers (the
system is the identifier's assigning authority) in the external identifier table the FHIR import uses, and
registered or updated through the patients' own service (so `patient.registered`/`patient.updated` follow).

A patient the feed has never named goes through the duplicate matcher first (`match_registration`, as the
FHIR import does): a probable match gets the feed's identifiers linked to it instead of a second record; a
possible one is registered and flagged in `meta_data.possible_duplicates` for a coordinator to review.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock
from core.languages import normalise as normalise_language
from core.phones import to_e164
from domain.fhir.identifiers import PATIENT_IDS
from domain.hl7.messages import ErrorCode, Hl7Error, Parsed, Segment, missing, parse_timestamp
from domain.integrations.schemas import CodeKind
from domain.patients import service as patients
from domain.patients.duplicates import match_registration
from domain.patients.models import Patient
from domain.patients.repository import PatientRepository
from domain.patients.schemas import PatientCreate, PatientUpdate
from domain.schemas import Email

SOURCE = "hl7"
GENDERS = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
# Our field -> the PID field it comes from (so a refusal names the HL7 field, never the value).
PID_FIELDS = {
    "first_name": "PID-5",
    "middle_name": "PID-5",
    "last_name": "PID-5",
    "date_of_birth": "PID-7",
    "gender": "PID-8",
    "address_line1": "PID-11",
    "address_line2": "PID-11",
    "city": "PID-11",
    "state": "PID-11",
    "postal_code": "PID-11",
    "country": "PID-11",
    "phone_primary": "PID-13",
    "email_primary": "PID-13",
    "phone_secondary": "PID-14",
    "preferred_language": "PID-15",
}
IDENTIFYING = frozenset({"first_name", "last_name", "date_of_birth"})  # refused (AE), never dropped
EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def default_system(parsed: Parsed) -> str:
    """The system of an identifier naming no assigning authority: the sending facility (or application)."""
    return parsed.header.sending_facility or parsed.header.sending_application or "hl7v2"


def identifiers(parsed: Parsed, segment: Segment, field: int) -> list[tuple[str, str]]:
    """The (system, value) pairs of a repeating CX field: CX-1 the id, CX-4 the assigning authority."""
    found: list[tuple[str, str]] = []
    for repetition in range(1, segment.repetitions(field) + 1):
        value = segment.value(field, 1, repetition)
        if not value:
            continue
        system = (
            segment.value(field, 4, repetition, 1)
            or segment.value(field, 4, repetition, 2)
            or default_system(parsed)
        )
        if len(system) > 255 or len(value) > 255:
            raise Hl7Error(
                f"{segment.id}-{field} holds an identifier longer than 255 characters.",
                code=ErrorCode.DATA_TYPE,
                location=f"{segment.id}-{field}",
            )
        found.append((system, value))
    return list(dict.fromkeys(found))


def _phone_or_email(parsed: Parsed, pid: Segment, field: int) -> tuple[str | None, str | None]:
    """The first usable phone number and e-mail of an XTN field (XTN-1, or XTN-5/6/7; XTN-4 for e-mail). A
    number or an address that is not one (a placeholder such as `000`) is passed over, with a warning."""
    phone = email = None
    location = f"PID-{field}"
    for repetition in range(1, pid.repetitions(field) + 1):
        address = pid.value(field, 4, repetition)
        if address and "@" in address:
            try:
                email = email or EMAIL.validate_python(address)
            except ValidationError:
                parsed.warn(
                    location,
                    f"{location} holds an e-mail address that is not one: not used.",
                    ErrorCode.DATA_TYPE,
                )
            continue
        number = pid.value(field, 1, repetition)
        country, area, local = (pid.value(field, c, repetition) for c in (5, 6, 7))
        if not number and local:
            number = f"+{country}{area}{local}" if country else f"{area}{local}"
        if not number or phone:
            continue
        try:
            phone = to_e164(number)
        except ValueError:
            parsed.warn(
                location,
                f"{location} holds a number that is not a phone number (a placeholder?): not used.",
                ErrorCode.DATA_TYPE,
            )
    return phone, email


def _gender(parsed: Parsed, pid: Segment) -> str | None:
    """PID-8 as our gender: through the feed's sex code map, else HL7 table 0001; else None (a warning)."""
    sex = pid.value(8)
    if not sex:
        return None
    mapped = parsed.feed.mapped(CodeKind.SEX, sex)
    if mapped is not None:
        return mapped
    if sex.upper() in GENDERS:
        return GENDERS[sex.upper()]
    parsed.warn(
        "PID-8",
        "PID-8 (administrative sex) is neither in HL7 table 0001 nor in this feed's sex code map: not used.",
    )
    return None


def _language(parsed: Parsed, pid: Segment) -> str | None:
    """PID-15 (CE: code^text) as a BCP 47 tag: through the feed's language code map (its code, then its text),
    else as a language code itself (`es`, `spa`, `pt_BR`); else None (a warning)."""
    code, text = pid.value(15, 1), pid.value(15, 2)
    if not code and not text:
        return None
    mapped = parsed.feed.mapped(CodeKind.LANGUAGE, code, text)
    if mapped is not None:
        return mapped
    for candidate in (code, text):
        if candidate:
            try:
                return normalise_language(candidate)
            except ValueError:
                continue
    parsed.warn(
        "PID-15",
        "PID-15 (primary language) is neither a language code (BCP 47, ISO 639) nor in this feed's language "
        "code map: not used.",
    )
    return None


def patient_fields(parsed: Parsed, pid: Segment) -> dict[str, Any]:
    """Our patient fields from PID (only those it carries), validated as a registration is. An optional field
    that is not usable is dropped with a warning; the names (PID-5) and the date of birth (PID-7), which
    identify the patient, are refused (AE)."""
    family, given = pid.value(5, 1), pid.value(5, 2)
    if not family or not given:
        raise missing("PID-5", "the patient's family and given names")
    fields: dict[str, Any] = {
        "first_name": given,
        "last_name": family,
        "middle_name": pid.value(5, 3) or None,
    }
    born = parse_timestamp(pid.value(7), "PID-7")
    if born is not None and len(pid.value(7)) < len("YYYYMMDD"):  # never stored as 1 January
        raise Hl7Error(
            "PID-7 (date of birth) must give the day (YYYYMMDD); a year or a year and month alone is not a "
            "date of birth the patient's record can hold.",
            code=ErrorCode.DATA_TYPE,
            location="PID-7",
        )
    if born is not None:
        fields["date_of_birth"] = date(born.year, born.month, born.day)
    gender = _gender(parsed, pid)
    if gender is not None:
        fields["gender"] = gender
    if pid.repetitions(11):
        fields.update(
            address_line1=pid.value(11, 1) or None,
            address_line2=pid.value(11, 2) or None,
            city=pid.value(11, 3) or None,
            state=pid.value(11, 4) or None,
            postal_code=pid.value(11, 5) or None,
            country=pid.value(11, 6) or None,
        )
    home_phone, email = _phone_or_email(parsed, pid, 13)
    work_phone, _ = _phone_or_email(parsed, pid, 14)
    if home_phone or work_phone:
        fields["phone_primary"] = home_phone or work_phone
    if home_phone and work_phone:
        fields["phone_secondary"] = work_phone
    if email:
        fields["email_primary"] = email
    language = _language(parsed, pid)
    if language is not None:
        fields["preferred_language"] = language
    for _ in range(len(fields)):  # each round drops at least one field, or returns
        try:
            checked = PatientCreate(**fields).model_dump(
                exclude_unset=True, exclude={"tenant_id", "mrn", "meta_data"}
            )
        except ValidationError as exc:
            invalid = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            if not invalid or invalid & IDENTIFYING or not invalid <= fields.keys():
                raise refusal(exc) from exc
            for name in sorted(invalid):
                location = PID_FIELDS.get(name, "PID")
                parsed.warn(
                    location,
                    f"{location}: not a valid value for a patient's record; not used.",
                    ErrorCode.DATA_TYPE,
                )
                del fields[name]
            continue
        return {k: v for k, v in checked.items() if k in fields}
    raise missing("PID-5", "the patient's family and given names")  # unreachable: the names are never dropped


def refusal(exc: ValidationError) -> Hl7Error:
    """A validation error of our fields as an AE naming the PID fields concerned, never their values."""
    names = [str(err["loc"][0]) if err["loc"] else "" for err in exc.errors()]
    where = sorted({PID_FIELDS.get(name, "PID") for name in names})
    return Hl7Error(
        f"{', '.join(where)}: not a valid value for a patient's record.",
        code=ErrorCode.DATA_TYPE,
        location=where[0] if where else "PID",
    )


@dataclass(frozen=True)
class PatientResult:
    """The patient a message is about, and whether it was registered by this message."""

    patient: Patient
    created: bool


async def survivor(session: AsyncSession, patient_id: uuid.UUID) -> Patient:
    """The patient, or the record it was merged into (merges redirect to the surviving record)."""
    repo = PatientRepository(session)
    patient = await repo.get_or_404(patient_id)
    while patient.merged_into_id is not None:
        patient = await repo.get_or_404(patient.merged_into_id)
    return patient


async def find_by_identifiers(
    session: AsyncSession, ids: list[tuple[str, str]], location: str
) -> Patient | None:
    """The one patient these identifiers name (after merges), None if none; AE when they name two."""
    found: dict[uuid.UUID, Patient] = {}
    for system, value in ids:
        patient_id = await PATIENT_IDS.find(session, system, value)
        if patient_id is not None:
            patient = await survivor(session, patient_id)
            found[patient.id] = patient
    if len(found) > 1:
        raise Hl7Error(
            f"The identifiers in {location} name different patients.",
            code=ErrorCode.DUPLICATE_KEY,
            location=location,
        )
    return next(iter(found.values()), None)


async def claim(
    session: AsyncSession, patient_id: uuid.UUID, ids: list[tuple[str, str]], location: str
) -> None:
    """Give the patient the identifiers it lacks; AE when another patient holds one."""
    for system, value in ids:
        holder = await PATIENT_IDS.find(session, system, value)
        if holder is None:
            await PATIENT_IDS.add(session, patient_id, system, value)
        elif (await survivor(session, holder)).id != patient_id:
            raise Hl7Error(
                f"An identifier in {location} already names another patient.",
                code=ErrorCode.DUPLICATE_KEY,
                location=location,
            )


async def upsert_patient(session: AsyncSession, parsed: Parsed, *, update: bool = True) -> PatientResult:
    """The patient PID names: found by PID-3 (and brought up to date with PID when `update`), linked to a
    probable duplicate, or registered."""
    pid = parsed.required("PID")
    ids = identifiers(parsed, pid, 3)
    if not ids:
        raise missing("PID-3", "the patient identifier list")
    fields = patient_fields(parsed, pid)
    # Two messages about one new patient at once: the second waits for the first to commit, then finds the
    # patient it registered (instead of registering another, then refusing to resend). Sorted: no deadlock.
    tenant_id = session.info["tenant_id"]
    for system, value in sorted(set(ids)):
        await advisory_xact_lock(session, f"hl7.patient:{tenant_id}:{system}|{value}")
    repo = PatientRepository(session)
    patient = await find_by_identifiers(session, ids, "PID-3")
    if patient is not None:
        await claim(session, patient.id, ids, "PID-3")
        changed = {k: v for k, v in fields.items() if getattr(patient, k) != v}
        if update and changed:
            patient = await patients.update_patient(repo, patient.id, PatientUpdate(**changed))
        return PatientResult(patient, created=False)
    data = PatientCreate(**fields)
    candidate = Patient(**data.model_dump(exclude={"tenant_id", "mrn"}), mrn="")
    match = await match_registration(repo, candidate)
    if match.probable is not None:
        patient = await survivor(session, match.probable.id)
        await claim(session, patient.id, ids, "PID-3")
        return PatientResult(patient, created=False)
    if match.possible:
        data.meta_data = {
            **data.meta_data,
            "possible_duplicates": [str(p.id) for p in match.possible],
            "imported_from": SOURCE,
        }
    patient = await patients.create_patient(repo, data)
    await claim(session, patient.id, ids, "PID-3")
    return PatientResult(patient, created=True)
