"""FHIR R4 Subscription rest-hook notifications (`/fhir/R4/$subscription-hook`): the EHR's change
notifications in, domain events out (`domain.fhir.subscription_hook`). Callers are integration clients
with the `fhir` scope; errors are OperationOutcomes like the rest of /fhir/R4.

Give the EHR's Subscription `channel.type = rest-hook`, `channel.endpoint = <base>/fhir/R4/$subscription-hook`
and `channel.header = ["Authorization: Bearer <token>"]`; `channel.payload` may be unset (pings, ignored)
or `application/fhir+json` (the resource is POSTed, or PUT to `<endpoint>/<type>/<id>`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from api.deps import RawSessionDep
from api.integration_audit import record_integration_write
from api.integration_auth import FhirClient
from api.routers.fhir import FHIR_BASE, FhirResponse
from core.client_credentials import ClientCaller
from core.errors import BadRequest, DomainError
from domain.fhir.render import as_json, model
from domain.fhir.subscription_hook import receive_notification

router = APIRouter(prefix=FHIR_BASE, tags=["fhir"], include_in_schema=False)
HOOK = "/$subscription-hook"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


class UnsupportedMediaType(DomainError):
    """415: a notification is FHIR JSON (or empty)."""

    status_code = 415


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType("Send notifications as application/fhir+json (or with no body).")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest("The body is not JSON.") from exc


async def _notify(request: Request, caller: ClientCaller, session: RawSessionDep, body: Any) -> FhirResponse:
    report = await receive_notification(session, body)
    await record_integration_write(
        session,
        request,
        caller,
        action="fhir.subscription_hook",
        resource_type="fhir",
        patients=report.patients,
    )
    words = (
        f"Notification received: {report.imported} record(s) imported, {report.emitted} event(s) "
        f"emitted, {report.repeated} already received."
    )
    if report.skipped:
        words += " Skipped: " + "; ".join(report.skipped[:10])
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": words}],
    }
    return FhirResponse(status_code=200, content=as_json(model(outcome)))


@router.post(HOOK)
async def subscription_notification(
    request: Request, caller: FhirClient, session: RawSessionDep
) -> FhirResponse:
    """A rest-hook notification: empty (a ping), a resource, or a Bundle of resources."""
    return await _notify(request, caller, session, await _body(request))


@router.put(HOOK + "/{resource_type}/{resource_id}")
async def subscription_resource(
    resource_type: str, resource_id: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> FhirResponse:
    """A rest-hook notification carrying the resource, sent as an update to `<endpoint>/<type>/<id>`."""
    body = await _body(request)
    if (
        not isinstance(body, dict)
        or body.get("resourceType") != resource_type
        or str(body.get("id")) != resource_id
    ):
        raise BadRequest("The body must be the resource the URL names (its resourceType and id).")
    return await _notify(request, caller, session, body)
