"""Audit record shapes, as `GET /audit` answers them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from core.audit import AuditOutcome
from core.pagination import Page
from domain.schemas import ResponseModel


class AuditRecordResponse(ResponseModel):
    """One access to patient data: ids only, never a name, a number, a search term or a message."""

    id: int
    seq: int = Field(description="Position in the tenant's chain: 1, 2, 3, ... without gaps")
    occurred_at: datetime = Field(description="When the request arrived")
    user_sub: str = Field(description="The caller's `sub`")
    user_roles: list[str]
    action: str = Field(description="The operation id, e.g. `patients.get`")
    resource_type: str = Field(description="The operation's resource, e.g. `patients`")
    resource_id: uuid.UUID | None = Field(description="The record the operation named or created")
    patient_id: uuid.UUID | None = Field(description="The patient concerned, when known")
    outcome: AuditOutcome
    status_code: int | None = Field(
        description="The answer's status; empty on a write's record, committed before the answer existed"
    )
    request_id: str | None = Field(description="The request's `X-Request-ID`")
    client_address: str | None
    prev_hash: str = Field(description="The previous record's hash (64 zeros for the first)")
    hash: str = Field(description="SHA-256 over `prev_hash` and this record's content")


class AuditRecordListResponse(Page[AuditRecordResponse]):
    """A page of audit records, newest first."""
