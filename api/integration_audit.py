"""The audit records of what an integration client (an EHR) wrote: one per patient concerned, appended in
the write's own transaction (so there is no change without its record), as the coordinator API's writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import AuditEvent, AuditOutcome, append
from core.client_credentials import ClientCaller

INTEGRATION_ROLE = "integration"  # how the audit trail names a system's role


async def record_integration_write(
    session: AsyncSession,
    request: Request,
    caller: ClientCaller,
    *,
    action: str,
    resource_type: str,
    patients: Iterable[uuid.UUID],
) -> None:
    """Append the write's records (one per patient, in order, each once) to the session's transaction."""
    client = request.client
    await append(
        session,
        [
            AuditEvent(
                tenant_id=caller.tenant_id,
                user_sub=caller.sub,
                user_roles=(INTEGRATION_ROLE,),
                action=action,
                resource_type=resource_type,
                outcome=AuditOutcome.ALLOWED,
                occurred_at=datetime.now(UTC),
                patient_id=patient_id,
                status_code=200,
                request_id=getattr(request.state, "request_id", None),
                client_address=client.host[:64] if client else None,
            )
            for patient_id in dict.fromkeys(patients)
        ],
    )
