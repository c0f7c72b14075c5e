"""Merging a duplicate patient record into the one that survives, across every domain, in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from core.events import EventType, emit
from domain.journeys.trigger_merge import move_trigger_starts
from domain.patients.repository import PatientRepository
from domain.patients.service import lock_for_merge, merge_consents, retire_merged
from domain.records.repository import PatientRecordRepository
from domain.records.schemas import MergedRecords


@dataclass(frozen=True)
class MergeResult:
    """What a merge did."""

    primary_patient_id: uuid.UUID
    merged_patient_id: uuid.UUID
    merged_at: datetime
    moved: MergedRecords


async def merge_patients(
    patients: PatientRepository,
    records: PatientRecordRepository,
    *,
    primary_id: uuid.UUID,
    duplicate_id: uuid.UUID,
) -> MergeResult:
    """Move everything the duplicate owns onto the primary and retire the duplicate, in one transaction.

    Its domain events and journey trigger starts move too (a start the primary already has is not
    duplicated: `move_trigger_starts`), then `patient.merged` is emitted for the primary.

    Both patients are row-locked first (see `lock_for_merge`), so concurrent merges of the same records
    queue up and the second sees the first's outcome.
    """
    primary, duplicate = await lock_for_merge(patients, primary_id=primary_id, duplicate_id=duplicate_id)
    moved = await records.move_owned_records(from_patient=duplicate.id, to_patient=primary.id)
    moved["journey_trigger_starts"] = await move_trigger_starts(
        patients.session, from_patient=duplicate.id, to_patient=primary.id
    )
    moved["channel_consents"] = await merge_consents(patients, primary=primary.id, duplicate=duplicate.id)
    merged_at = await retire_merged(patients, duplicate, into=primary)
    await emit(
        patients.session,
        tenant_id=primary.tenant_id,
        type=EventType.PATIENT_MERGED,
        patient_id=primary.id,
        subject=("patient", primary.id),
        facts={"merged_patient_id": duplicate.id},
    )
    return MergeResult(
        primary_patient_id=primary.id,
        merged_patient_id=duplicate.id,
        merged_at=merged_at,
        moved=MergedRecords(**moved),
    )
