"""The patient record's hottest reads, straight on psycopg (`core.reads`): the tenant filter is in every
statement, on every table it reads (tests/test_tenancy_core.py shows each)."""

from __future__ import annotations

import uuid

from psycopg.rows import DictRow
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from core.database import TENANT_PARAMETER
from core.reads import TenantRead, TenantReads
from domain.patients.models import Patient
from domain.patients.repository import PatientRepository
from domain.records.repository import statistics_columns

_TENANT = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
# GET /patients/{id}: the patient's columns and their statistics' (`PatientStatistics`' fields).
PATIENT_DETAIL = select(*Patient.__table__.columns, *statistics_columns(Patient.id, _TENANT)).where(
    Patient.id == bindparam("patient_id", type_=PG_UUID(as_uuid=True)), Patient.tenant_id == _TENANT
)
PATIENT_DETAIL_READ = TenantRead.of(PATIENT_DETAIL)


async def patient_detail(reads: TenantReads, patient_id: uuid.UUID) -> DictRow:
    """The patient and their statistics in one round trip; NotFound when the tenant has no such patient."""
    return await reads.one_or_404(PATIENT_DETAIL_READ, PatientRepository.label, patient_id=patient_id)
