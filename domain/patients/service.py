"""Patient use cases. Services flush, never commit: the request owns the transaction."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime

from core.errors import Conflict, NotFound
from core.events import EventType, emit
from domain.enums import Channel, Gender, PatientStatus
from domain.patients.models import Patient
from domain.patients.repository import AGE_GROUPS, UNSPECIFIED, PatientRepository
from domain.patients.schemas import PatientCreate, PatientDemographicsResponse, PatientUpdate
from domain.schemas import changes
from domain.tenants.models import Tenant

MRN_PREFIX = "MRN-"
MRN_RANDOM_CHARS = 10  # base32: 50 random bits, so clashes are vanishingly rare even at millions of patients


def generate_mrn() -> str:
    """A fresh MRN such as `MRN-K7Q2MZ4XWD` (50 random bits); the database still enforces uniqueness."""
    token = base64.b32encode(secrets.token_bytes(MRN_RANDOM_CHARS)).decode("ascii")
    return MRN_PREFIX + token[:MRN_RANDOM_CHARS]


async def create_patient(repo: PatientRepository, data: PatientCreate) -> Patient:
    """Register a patient in the caller's tenant (active, with a generated MRN unless one is given); emits
    `patient.registered` (which starts the tenant's default journeys) with the registration."""
    fields = data.model_dump(exclude={"tenant_id", "mrn"})
    patient = Patient(**fields, mrn=data.mrn or generate_mrn(), status=PatientStatus.ACTIVE.value)
    patient = await repo.add(patient)
    await emit(
        repo.session,
        tenant_id=patient.tenant_id,
        type=EventType.PATIENT_REGISTERED,
        patient_id=patient.id,
        subject=("patient", patient.id),
    )
    return patient


async def update_patient(repo: PatientRepository, patient_id: uuid.UUID, data: PatientUpdate) -> Patient:
    """Apply the fields sent in a PATCH; a merged record's status cannot change."""
    patient = await repo.get_for_update(patient_id)
    updates = changes(data)
    new_status = updates.get("status")
    if patient.merged_into_id is not None and new_status not in (None, patient.status):
        raise Conflict("This patient was merged into another record; its status cannot change.")
    for field, value in updates.items():
        if field == "meta_data" and value is None:
            value = {}
        setattr(patient, field, value)
    if updates:
        await _updated(repo, patient, sorted(updates))
    return await repo.save(patient)


async def _updated(repo: PatientRepository, patient: Patient, fields: list[str]) -> None:
    """Emit `patient.updated`, naming the fields that changed (never their values)."""
    await emit(
        repo.session,
        tenant_id=patient.tenant_id,
        type=EventType.PATIENT_UPDATED,
        patient_id=patient.id,
        subject=("patient", patient.id),
        facts={"fields": fields},
    )


async def soft_delete_patient(repo: PatientRepository, patient_id: uuid.UUID) -> Patient:
    """Retire a patient (status `inactive`); a deceased patient keeps that status, history is kept."""
    patient = await repo.get_for_update(patient_id)
    if patient.status == PatientStatus.ACTIVE:
        patient.status = PatientStatus.INACTIVE.value
        await _updated(repo, patient, ["status"])
    return await repo.save(patient)


async def activate_patient(repo: PatientRepository, patient_id: uuid.UUID) -> Patient:
    """Make an inactive patient active again (merged and deceased records cannot be)."""
    patient = await repo.get_for_update(patient_id)
    if patient.merged_into_id is not None:
        raise Conflict("This patient was merged into another record and cannot be reactivated.")
    if patient.status == PatientStatus.DECEASED:
        raise Conflict("A deceased patient cannot be reactivated; correct the status with PATCH if needed.")
    if patient.status != PatientStatus.ACTIVE:
        patient.status = PatientStatus.ACTIVE.value
        await _updated(repo, patient, ["status"])
    return await repo.save(patient)


async def lock_for_merge(
    repo: PatientRepository, *, primary_id: uuid.UUID, duplicate_id: uuid.UUID
) -> tuple[Patient, Patient]:
    """Row-lock the primary and the duplicate and check the duplicate may be merged into the primary.

    Both rows are locked in id order, so two merges touching the same patients run one after the other
    and the second sees the first's outcome.
    """
    locked = await repo.lock(primary_id, duplicate_id)
    if primary_id not in locked or duplicate_id not in locked:
        raise NotFound("Patient not found.")
    if primary_id == duplicate_id:
        raise Conflict("A patient cannot be merged into itself.")
    primary, duplicate = locked[primary_id], locked[duplicate_id]
    if duplicate.merged_into_id is not None:
        raise Conflict("The duplicate patient has already been merged into another record.")
    if primary.merged_into_id is not None:
        raise Conflict("The primary patient was merged into another record; merge into that record instead.")
    return primary, duplicate


async def retire_merged(repo: PatientRepository, duplicate: Patient, *, into: Patient) -> datetime:
    """Retire the duplicate as merged into `into`, as are records merged into it earlier; returns when."""
    await repo.redirect_merges(from_patient=duplicate.id, to_patient=into.id)
    duplicate.status = PatientStatus.INACTIVE.value
    duplicate.merged_into_id = into.id
    duplicate.merged_at = merged_at = datetime.now(UTC)
    await repo.save(duplicate)
    return merged_at


async def merge_consents(repo: PatientRepository, *, primary: uuid.UUID, duplicate: uuid.UUID) -> int:
    """Carry the duplicate's channel consents over (returns how many); where both have one, an opt-out wins.

    Folding towards the opt-out means a merge never resumes messages the person asked to stop.
    """
    consents = await repo.consents_of(primary, duplicate)
    primary_by_channel = {c.channel: c for c in consents if c.patient_id == primary}
    carried = 0
    for consent in (c for c in consents if c.patient_id == duplicate):
        carried += 1
        kept = primary_by_channel.get(consent.channel)
        if kept is None:
            consent.patient_id = primary
            continue
        if consent.opted_out and not kept.opted_out:
            kept.opted_out = True
            kept.changed_at = consent.changed_at
            kept.source = consent.source
        await repo.session.delete(consent)
    await repo.session.flush()
    return carried


async def demographics(repo: PatientRepository, tenant_id: uuid.UUID) -> PatientDemographicsResponse:
    """Counts of the tenant's patients by status, gender, age group, channel and language."""
    tenant = await repo.session.get(Tenant, tenant_id)
    rows = await repo.demographics(tenant.timezone if tenant else "UTC")
    breakdown: dict[str, dict[str, int]] = {
        "status": dict.fromkeys((s.value for s in PatientStatus), 0),
        "gender": dict.fromkeys([*(g.value for g in Gender), UNSPECIFIED], 0),
        "age_group": dict.fromkeys(AGE_GROUPS, 0),
        "preferred_channel": dict.fromkeys([*(c.value for c in Channel), UNSPECIFIED], 0),
        "preferred_language": {},
    }
    total = new_this_month = 0
    for row in rows:
        dimension = next((d for d in breakdown if row[d] is not None), None)
        if dimension is None:
            total, new_this_month = row["count"], row["new"]
        else:
            breakdown[dimension][row[dimension]] = row["count"]
    return PatientDemographicsResponse(
        total=total,
        by_status=breakdown["status"],
        by_gender=breakdown["gender"],
        by_age_group=breakdown["age_group"],
        by_preferred_channel=breakdown["preferred_channel"],
        by_preferred_language=breakdown["preferred_language"],
        new_this_month=new_this_month,
    )
