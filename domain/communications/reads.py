"""Messages' hottest reads, straight on psycopg (`core.reads`), filtered by the caller's tenant."""

from __future__ import annotations

import uuid

from psycopg.rows import DictRow

from core.reads import TenantRead, TenantReads
from domain.communications.models import Communication
from domain.communications.repository import CommunicationRepository
from domain.communications.schemas import CommunicationDetail

COMMUNICATION = TenantRead.by_id(Communication.__table__, CommunicationDetail)  # type: ignore[arg-type]


async def communication(reads: TenantReads, communication_id: uuid.UUID) -> DictRow:
    """One message of the tenant's, with its delivery state (NotFound otherwise)."""
    return await reads.one_or_404(COMMUNICATION, CommunicationRepository.label, record_id=communication_id)
