"""Audit trail API (`/audit`): who read or changed which patient's data, for administrators."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import CanAdminister, CurrentPrincipal, SessionDep
from api.openapi import AUTHENTICATED
from core.audit import AuditBuffer, AuditOutcome
from core.pagination import PageDep
from domain.audit.repository import AuditRepository
from domain.audit.schemas import AuditRecordListResponse, AuditRecordResponse
from domain.schemas import Instant

router = APIRouter(prefix="/audit", tags=["audit"], responses=AUTHENTICATED)


@router.get("", response_model=AuditRecordListResponse, dependencies=[CanAdminister])
async def list_audit_records(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    patient_id: Annotated[uuid.UUID | None, Query(description="Only records concerning this patient")] = None,
    user: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only this user's (their `sub`)")
    ] = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Only this operation (`patients.get`)")
    ] = None,
    outcome: Annotated[AuditOutcome | None, Query(description="allowed, denied, not_found or error")] = None,
    since: Annotated[Instant | None, Query(description="Requests from this instant on (inclusive)")] = None,
    until: Annotated[Instant | None, Query(description="Requests before this instant (exclusive)")] = None,
) -> AuditRecordListResponse:
    """Your tenant's audit trail, newest first: every read and write of patient data, with who (`user_sub`,
    `user_roles`), what (`action`, the operation id; `resource_id`; `patient_id`), when, from where
    (`client_address`, `request_id`) and the `outcome`. A write's record is committed with the write and
    shown from then on; reads made through other API processes appear within about a second.
    Administrators only."""
    # Every record committed so far joins the chain first (this process's queued reads too), so the trail
    # shows each write that has been answered.
    buffer: AuditBuffer | None = getattr(request.app.state, "audit_buffer", None)
    if buffer is not None:
        await buffer.flush()
    repo = AuditRepository(session, principal.tenant_id)
    stmt = repo.filtered(
        patient_id=patient_id, user_sub=user, action=action, outcome=outcome, since=since, until=until
    )
    rows, total = await repo.page(stmt, page)
    return AuditRecordListResponse.build([AuditRecordResponse.model_validate(r) for r in rows], total, page)
