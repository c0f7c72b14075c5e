"""FHIR R4 writes of one resource: create (`POST /Patient`, conditional with `If-None-Exist`), update by id
(`PUT /Patient/<id>`, checked against `If-Match`) and conditional update (`PUT /Patient?identifier=...`),
for Patient, Practitioner and Appointment.

Each runs as a transaction entry of its own would (`domain.fhir.transaction.import_resource`): matched by
identifier (a create that finds its record answers 200 with it rather than making a duplicate), new
patients through the duplicate matcher, every change through the domain services and their events. The
answer is the resource as stored, with its version (`ETag`, `Location` naming `_history/<version>`), or,
as the client prefers (`Prefer: return=minimal` or `return=OperationOutcome`), no body or an
OperationOutcome telling what was noted (an optional element left out, a duplicate matched).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from api.deps import RawSessionDep
from api.integration_auth import FhirClient
from api.routers.fhir import (
    CAPABILITIES,
    FHIR_BASE,
    JSON_TYPES,
    FhirResponse,
    UnsupportedMediaType,
    audit_event,
    base_url,
    load,
    patients_of,
    permit,
    render_records,
    versioned_response,
)
from core.audit import append
from core.client_credentials import ClientCaller
from core.errors import BadRequest, DomainError, NotFound
from core.smart_scopes import Permission
from domain.fhir.bundles import entry_outcome, operation_outcome
from domain.fhir.entries import IMPORT_ORDER, field_errors
from domain.fhir.render import model
from domain.fhir.transaction import EntryResult, import_resource

router = APIRouter(prefix=FHIR_BASE, tags=["fhir"], include_in_schema=False)
WRITABLE = IMPORT_ORDER  # Practitioner, Patient, Appointment


class PreconditionFailed(DomainError):
    """`If-Match` names a version that is no longer the current one."""

    status_code = 412


def _writable(resource_type: str) -> None:
    if resource_type not in WRITABLE:
        raise NotFound(f"This server does not create or update {resource_type[:40]!r} resources.")


async def _resource(request: Request, resource_type: str) -> dict[str, Any]:
    """The request's resource: FHIR JSON of the route's type, valid against its model."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType(f"Send the {resource_type} as application/fhir+json.")
    try:
        body = await asyncio.to_thread(json.loads, await request.body())
    except ValueError as exc:
        raise BadRequest("The body is not JSON.") from exc
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise BadRequest(f"The body must be a {resource_type} resource.")
    try:
        await asyncio.to_thread(model, body)  # fhir.resources validation is CPU: off the loop
    except ValidationError as exc:
        raise BadRequest(f"The {resource_type} is not valid FHIR: {field_errors(exc)}") from exc
    return body


async def _answer(
    request: Request, caller: ClientCaller, session: Any, resource_type: str, result: EntryResult, action: str
) -> Response:
    """The stored resource as the answer to a write (its audit records committed with it)."""
    status = int(result.status.split()[0])
    if result.location is None:  # nothing stored (an appointment unknown here and already cancelled)
        await append(session, [audit_event(request, caller, action, None, None)])
        return FhirResponse(operation_outcome(200, result.note or "Nothing stored.", severity="information"))
    record = await load(session, resource_type, result.location.partition("/")[2])
    assert record is not None
    concerned: list[uuid.UUID | None] = [p for p in patients_of(resource_type, [record]) if p] or [None]
    await append(session, [audit_event(request, caller, action, p, None) for p in concerned])
    [resource] = await render_records(session, resource_type, [record])
    location = f"{base_url(request)}/{resource_type}/{record.id}/_history/{record.version}"
    answer = versioned_response(resource, record, status, Location=location)
    preference = _return_preference(request)
    if preference == "minimal":
        return Response(status_code=status, headers=_metadata_headers(answer))
    if preference == "OperationOutcome":
        outcome = entry_outcome(result) or operation_outcome(status, "Stored.", severity="information")
        return FhirResponse(outcome, status_code=status, headers=_metadata_headers(answer))
    return answer


def _metadata_headers(answer: FhirResponse) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k in ("etag", "last-modified", "location")}


def _return_preference(request: Request) -> str:
    """What the client prefers as the answer to a write (`Prefer: return=...`): FHIR's `representation`
    (the default), `minimal` or `OperationOutcome`."""
    for preference in request.headers.get("prefer", "").replace(";", ",").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "return" and value.strip() in ("minimal", "OperationOutcome"):
            return value.strip()
    return "representation"


def _version_of(header: str) -> str:
    """The version an `If-Match` names: `W/"3"`, `"3"` or `3`."""
    return header.strip().removeprefix("W/").strip('"')


@router.post("/{resource_type}")
@CAPABILITIES.declares("create", WRITABLE, conditional=True)
async def create(
    resource_type: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> Response:
    """Create a resource (201), or, when its identifiers or `If-None-Exist: identifier=system|value` find
    it, answer the one that exists (200) with the identifiers it lacked linked to it."""
    _writable(resource_type)
    permit(caller, resource_type, Permission.CREATE)
    resource = await _resource(request, resource_type)
    result = await import_resource(
        session,
        resource,
        method="POST",
        url=resource_type,
        if_none_exist=request.headers.get("if-none-exist"),
    )
    return await _answer(
        request, caller, session, resource_type, result, f"fhir.{resource_type.lower()}.create"
    )


@router.put("/{resource_type}/{resource_id}")
@CAPABILITIES.declares("update", WRITABLE)
async def update(
    resource_type: str, resource_id: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> Response:
    """Update a resource by its id (404 when it is not one of the tenant's: an update never creates). With
    `If-Match: W/"<version>"`, a version other than the current one is refused (412) and nothing changes."""
    _writable(resource_type)
    permit(caller, resource_type, Permission.UPDATE)
    resource = await _resource(request, resource_type)
    if resource.get("id") not in (None, resource_id):
        raise BadRequest("The resource's id must be the id in the URL.")
    record = await load(session, resource_type, resource_id)
    if record is None:
        raise NotFound(f"{resource_type} not found.")
    expected = request.headers.get("if-match")
    if expected is not None and _version_of(expected) != str(record.version):
        raise PreconditionFailed(
            f"If-Match names version {_version_of(expected)[:20]}, but the current version is "
            f"{record.version}."
        )
    result = await import_resource(session, resource, method="PUT", url=f"{resource_type}/{record.id}")
    return await _answer(
        request, caller, session, resource_type, result, f"fhir.{resource_type.lower()}.update"
    )


@router.put("/{resource_type}")
@CAPABILITIES.declares("update", WRITABLE, conditional=True)
async def conditional_update(
    resource_type: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> Response:
    """Update the resource `?identifier=system|value` finds (200), or create it when none has it (201)."""
    _writable(resource_type)
    permit(caller, resource_type, Permission.UPDATE)
    permit(caller, resource_type, Permission.CREATE)
    resource = await _resource(request, resource_type)
    query = request.url.query
    if not query:
        raise BadRequest("A conditional update needs ?identifier=system|value.")
    result = await import_resource(session, resource, method="PUT", url=f"{resource_type}?{query}")
    return await _answer(
        request, caller, session, resource_type, result, f"fhir.{resource_type.lower()}.update"
    )
