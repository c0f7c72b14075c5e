"""Voice call records from Twilio Voice status callbacks (signature checked by `api.webhook_auth`):
idempotent per CallSid, and a call's status only moves forward.

The tenant is found from (1) the call's existing record, (2) a `tenant_id` in the callback URL's query
(the URL is covered by Twilio's signature, so it can be trusted), or (3) the clinic's number (the called
number of an inbound call, the calling number of an outbound one) matched to one tenant's location phone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.phones import to_e164
from domain.analytics.models import CALL_STATUS_RANK, FINAL_CALL_STATUSES, VoiceCall
from domain.patients.models import Patient
from domain.scheduling.models import Location


def _e164(raw: str | None, region: str) -> str | None:
    if not raw:
        return None
    try:
        return to_e164(raw.removeprefix("tel:").removeprefix("client:"), region)
    except ValueError:
        return None


async def find_tenant(
    session: AsyncSession, params: Mapping[str, str], url_tenant: str | None, region: str
) -> uuid.UUID | None:
    """The tenant this callback belongs to, or None when it cannot be told (system session)."""
    existing = await session.scalar(
        select(VoiceCall.tenant_id).where(VoiceCall.call_sid == params["CallSid"])
    )
    if existing is not None:
        return existing
    if url_tenant:
        try:
            return uuid.UUID(url_tenant)
        except ValueError:
            return None
    inbound = params.get("Direction", "inbound") == "inbound"
    clinic_number = _e164(params.get("To") if inbound else params.get("From"), region)
    if clinic_number is None:
        return None
    tenants = (
        await session.scalars(
            select(Location.tenant_id).where(Location.phone == clinic_number).distinct().limit(2)
        )
    ).all()
    return tenants[0] if len(tenants) == 1 else None


async def record_status_callback(
    session: AsyncSession, tenant_id: uuid.UUID, params: Mapping[str, str], region: str
) -> VoiceCall:
    """Create or advance the call's record (flushes only). A status never moves backwards, and a repeated
    callback changes nothing."""
    status = params["CallStatus"]
    rank = CALL_STATUS_RANK[status]
    now = datetime.now(UTC)
    inbound = params.get("Direction", "inbound") == "inbound"
    patient_number = _e164(params.get("From") if inbound else params.get("To"), region)
    patient_id = None
    if patient_number:
        patient_id = await session.scalar(
            select(Patient.id)
            .where(Patient.tenant_id == tenant_id, Patient.phone_primary == patient_number)
            .limit(1)
        )
    duration = params.get("CallDuration")
    final = status in FINAL_CALL_STATUSES
    values = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "call_sid": params["CallSid"],
        "patient_id": patient_id,
        "direction": params.get("Direction"),
        "from_number": _e164(params.get("From"), region),
        "to_number": _e164(params.get("To"), region),
        "status": status,
        "status_rank": rank,
        "answered": status == "in-progress" or (status == "completed" and int(duration or 0) > 0),
        "duration_seconds": int(duration) if duration and duration.isdigit() else None,
        "started_at": now,
        "ended_at": now if final else None,
    }
    table = VoiceCall.__table__
    excluded = insert(VoiceCall).excluded
    stmt = (
        insert(VoiceCall)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["call_sid"],
            set_={
                "status": excluded.status,
                "status_rank": excluded.status_rank,
                "answered": table.c.answered | excluded.answered,
                "duration_seconds": func.coalesce(excluded.duration_seconds, table.c.duration_seconds),
                "ended_at": func.coalesce(table.c.ended_at, excluded.ended_at),
                "patient_id": func.coalesce(table.c.patient_id, excluded.patient_id),
                "updated_at": func.now(),
            },
            where=(table.c.status_rank < excluded.status_rank) & (table.c.tenant_id == excluded.tenant_id),
        )
    )
    await session.execute(stmt)
    call = await session.scalar(
        select(VoiceCall)
        .where(VoiceCall.call_sid == params["CallSid"])
        .execution_options(populate_existing=True)
    )
    assert call is not None
    return call
