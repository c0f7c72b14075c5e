"""Twilio Voice status callbacks (`/webhooks/twilio/voice-status`): the voice-call records analytics reads.

Authenticated by Twilio's signature (`api.webhook_auth.TwilioForm`), not by a bearer token.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response, status

from api.deps import RawSessionDep, SettingsDep
from api.openapi import SIGNED, errors
from api.ratelimit import limit_webhook_source
from api.webhook_auth import TwilioForm
from core.database import bind_tenant, mark_system
from core.errors import NotFound, Unprocessable
from domain.analytics import call_records
from domain.analytics.models import CALL_STATUS_RANK

router = APIRouter(
    prefix="/webhooks/twilio",
    tags=["webhooks"],
    responses=SIGNED,
    dependencies=[Depends(limit_webhook_source)],
)


@router.post(
    "/voice-status",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(not_found="Unknown call"),
)
async def voice_status_callback(
    form: TwilioForm,
    session: RawSessionDep,
    settings: SettingsDep,
    tenant_id: str | None = Query(
        default=None, description="Optional: the tenant, when the StatusCallback URL names it (it is signed)"
    ),
) -> Response:
    """Record a Twilio Voice status callback (CallSid, CallStatus, CallDuration, From, To, Direction).
    Repeats are harmless, and a late callback never moves a call's status backwards."""
    if not form.get("CallSid") or form.get("CallStatus") not in CALL_STATUS_RANK:
        raise Unprocessable("CallSid and a known CallStatus are required.")
    mark_system(session)  # finding the tenant looks across tenants; the write below is scoped
    tenant = await call_records.find_tenant(session, form, tenant_id, settings.default_phone_region)
    if tenant is None:
        raise NotFound("Unknown call: no tenant owns this number.")
    bind_tenant(session, tenant)
    await call_records.record_status_callback(session, tenant, form, settings.default_phone_region)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
