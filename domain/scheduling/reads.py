"""Appointments' hottest reads, straight on psycopg (`core.reads`), filtered by the caller's tenant."""

from __future__ import annotations

import uuid

from psycopg.rows import DictRow

from core.reads import TenantRead, TenantReads
from domain.scheduling.models import Appointment
from domain.scheduling.repository import AppointmentRepository
from domain.scheduling.schemas import AppointmentResponse

APPOINTMENT = TenantRead.by_id(Appointment.__table__, AppointmentResponse)  # type: ignore[arg-type]


async def appointment(reads: TenantReads, appointment_id: uuid.UUID) -> DictRow:
    """One appointment of the tenant's (NotFound otherwise)."""
    return await reads.one_or_404(APPOINTMENT, AppointmentRepository.label, record_id=appointment_id)
