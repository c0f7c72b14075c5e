"""FHIR R4 (`/fhir/R4`): the CapabilityStatement, read and search of Patient, Practitioner, Appointment and
Communication, and transaction Bundles from an EHR.

Callers are integration clients with the `fhir` scope (`POST /oauth/token`); their tenant comes from their
token, and SMART scopes in it (`system/Patient.rs`) narrow what they may do (`core.smart_scopes`).
Answers are `application/fhir+json`; errors are OperationOutcomes with the HTTP status that fits. Reads
of patient data leave audit records (one per patient concerned), as the coordinator API's do. The FHIR
API's contract is its CapabilityStatement (`GET /fhir/R4/metadata`), not the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from api.deps import RawSessionDep
from api.integration_auth import FhirClient
from api.routers.oauth import token_url
from core.audit import AuditBuffer, AuditEvent, AuditOutcome, append
from core.client_credentials import ClientCaller, Scope
from core.errors import BadRequest, DomainError, Forbidden, NotFound
from core.smart_scopes import Permission, allowed
from domain.fhir import render
from domain.fhir.bundles import (
    FHIR_JSON,
    capability_statement,
    operation_outcome,
    searchset,
    transaction_response,
)
from domain.fhir.capabilities import Capabilities
from domain.fhir.history import past_version
from domain.fhir.identifiers import APPOINTMENT_IDS, PATIENT_IDS, PRACTITIONER_IDS
from domain.fhir.render import etag
from domain.fhir.search import INCLUDES, SEARCHABLE, Include, build_search, run_search
from domain.fhir.transaction import import_bundle
from domain.integrations.keys import ALGORITHMS

FHIR_BASE = "/fhir/R4"
router = APIRouter(prefix=FHIR_BASE, tags=["fhir"], include_in_schema=False)
INTEGRATION_ROLE = "integration"  # how the audit trail names a system's role
CAPABILITIES = Capabilities()  # what the routes below (and in fhir_writes) declare they do
SERVED = tuple(SEARCHABLE)
VERSIONED = ("Patient", "Practitioner", "Appointment")  # the records that carry a version
for _searched, _includes in INCLUDES.items():  # declared from the table the search resolves them by
    CAPABILITIES.include(_searched, *_includes)


class FhirResponse(JSONResponse):
    """JSON with FHIR's media type."""

    media_type = FHIR_JSON


def render_error(status: int, detail: str, headers: dict[str, str]) -> JSONResponse:
    """An error under /fhir/ as an OperationOutcome (installed in `api.errors` by the app)."""
    return FhirResponse(status_code=status, content=operation_outcome(status, detail), headers=headers)


def base_url(request: Request) -> str:
    """The FHIR base URL as the caller reached it (or as PRM_PUBLIC_BASE_URL names the service)."""
    public = request.app.state.settings.public_base_url
    root = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return root + FHIR_BASE


def audit_event(
    request: Request, caller: ClientCaller, action: str, patient: uuid.UUID | None, status: int | None
) -> AuditEvent:
    client = request.client
    return AuditEvent(
        tenant_id=caller.tenant_id,
        user_sub=caller.sub,
        user_roles=(INTEGRATION_ROLE,),
        action=action,
        resource_type="fhir",
        outcome=AuditOutcome.ALLOWED if status is None or status < 400 else AuditOutcome.NOT_FOUND,
        occurred_at=datetime.now(UTC),
        patient_id=patient,
        status_code=status,
        request_id=getattr(request.state, "request_id", None),
        client_address=client.host[:64] if client else None,
    )


def audit_read(
    request: Request, caller: ClientCaller, action: str, patients: Iterable[uuid.UUID | None], status: int
) -> None:
    """Queue the audit records of a read (one per patient concerned, or one naming none)."""
    buffer: AuditBuffer | None = getattr(request.app.state, "audit_buffer", None)
    if buffer is None:
        return
    concerned: list[uuid.UUID | None] = list(dict.fromkeys(p for p in patients if p is not None)) or [None]
    for patient in concerned:
        buffer.add(audit_event(request, caller, action, patient, status))


def patients_of(resource_type: str, records: list[Any]) -> list[uuid.UUID | None]:
    if resource_type == "Patient":
        return [r.id for r in records]
    if resource_type in ("Appointment", "Communication"):
        return [r.patient_id for r in records]
    return []


async def render_records(session: Any, resource_type: str, records: list[Any]) -> list[Any]:
    """Render records of one type, with the external identifiers they carry."""
    ids = [r.id for r in records]
    if resource_type == "Patient":
        known = await PATIENT_IDS.of(session, ids)
        return [render.patient_resource(r, known.get(r.id, [])) for r in records]
    if resource_type == "Practitioner":
        known = await PRACTITIONER_IDS.of(session, ids)
        return [render.practitioner_resource(r, known.get(r.id, [])) for r in records]
    if resource_type == "Appointment":
        known = await APPOINTMENT_IDS.of(session, ids)
        return [render.appointment_resource(r, known.get(r.id, [])) for r in records]
    return [render.communication_resource(r) for r in records]


def supported(resource_type: str) -> None:
    if resource_type not in SEARCHABLE:
        raise NotFound(f"This server does not serve {resource_type[:40]!r} resources.")


def permit(caller: ClientCaller, resource_type: str, *permissions: Permission) -> None:
    """403 unless the caller's SMART scopes (if its token has any) allow each of `permissions`."""
    for permission in permissions:
        if not allowed(caller.grants, resource_type, permission):
            raise Forbidden(
                f"This token's scopes do not allow {permission.name.lower()} of {resource_type} "
                f"(ask for system/{resource_type}.{permission.value} or wider)."
            )


@router.get("/metadata")
async def metadata(request: Request) -> FhirResponse:
    """The CapabilityStatement (public, as FHIR servers' are)."""
    return FhirResponse(capability_statement(base_url(request), request.app.version, CAPABILITIES))


def _smart_scopes() -> list[str]:
    """The SMART scopes worth advertising: read and search of everything, and all of each type."""
    every = ["system/*.read", "system/*.rs", "system/*.cruds"]
    return every + [f"system/{t}.{p}" for t in SEARCHABLE for p in ("read", "rs", "cruds")]


@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> JSONResponse:
    """SMART discovery: where a backend service gets its token, and how (client credentials, authenticated
    by a signed assertion or a secret)."""
    return JSONResponse(
        {
            "token_endpoint": token_url(request),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "client_secret_basic",
                "client_secret_post",
            ],
            "token_endpoint_auth_signing_alg_values_supported": sorted(ALGORITHMS),
            "scopes_supported": [s.value for s in Scope] + _smart_scopes(),
            "capabilities": [
                "client-confidential-asymmetric",
                "client-confidential-symmetric",
                "permission-v1",
                "permission-v2",
            ],
        }
    )


def _lenient(request: Request) -> bool:
    """Whether the client asked (`Prefer: handling=lenient`) for unknown search parameters to be ignored
    rather than refused, as FHIR lets it; strict is this server's default."""
    preferences = request.headers.get("prefer", "").replace(";", ",").split(",")
    return any(p.strip().lower().replace(" ", "") == "handling=lenient" for p in preferences)


@router.get("/{resource_type}")
@CAPABILITIES.declares("search-type", SERVED)
async def search(
    resource_type: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> FhirResponse:
    """Search one resource type; a searchset Bundle of one page (strict about unknown parameters, modifiers
    and sort keys unless the client prefers `handling=lenient`)."""
    supported(resource_type)
    permit(caller, resource_type, Permission.SEARCH)
    params = list(request.query_params.multi_items())
    found = build_search(resource_type, params, lenient=_lenient(request))
    for include in found.includes:
        permit(caller, include.resource_type, Permission.READ)
    result = await run_search(session, found.statement, found.paging)
    resources = await render_records(session, resource_type, result.records)
    included, included_records = await _included(session, found.includes, result.records)
    patients = patients_of(resource_type, result.records)
    for kind, records in included_records.items():
        patients += patients_of(kind, records)
    audit_read(request, caller, f"fhir.{resource_type.lower()}.search", patients, 200)
    return FhirResponse(
        searchset(base_url(request), resource_type, found.applied, resources, result, included)
    )


async def _included(
    session: Any, includes: list[Include], matches: list[Any]
) -> tuple[list[Any], dict[str, list[Any]]]:
    """The resources `_include`s bring for a page of matches (each once), rendered, and their records."""
    rendered: list[Any] = []
    records_by_type: dict[str, list[Any]] = {}
    for include in includes:
        wanted = {getattr(match, include.attribute) for match in matches} - {None}
        if not wanted:
            continue
        model = SEARCHABLE[include.resource_type].model
        records = list(
            (await session.scalars(select(model).where(model.id.in_(wanted)).order_by(model.id))).all()
        )
        records_by_type.setdefault(include.resource_type, []).extend(records)
        rendered += await render_records(session, include.resource_type, records)
    return rendered, records_by_type


async def load(session: Any, resource_type: str, resource_id: str) -> Any | None:
    """The tenant's record a FHIR id names, or None (an id that is not one of ours names nothing)."""
    model = SEARCHABLE[resource_type].model
    try:
        record_id = uuid.UUID(resource_id)
    except ValueError:
        return None
    return await session.scalar(select(model).where(model.id == record_id))


def versioned_response(resource: Any, record: Any, status: int = 200, **headers: str) -> FhirResponse:
    """A resource as the answer, with its version's ETag and Last-Modified when it has them."""
    if getattr(record, "version", None) is not None:
        headers["ETag"] = etag(record.version)
    headers["Last-Modified"] = format_datetime(record.updated_at.astimezone(UTC), usegmt=True)
    return FhirResponse(render.as_json(resource), status_code=status, headers=headers)


async def _read_one(
    request: Request, caller: ClientCaller, session: Any, resource_type: str, resource_id: str, action: str
) -> tuple[Any, Any]:
    supported(resource_type)
    permit(caller, resource_type, Permission.READ)
    record = await load(session, resource_type, resource_id)
    if record is None:
        audit_read(request, caller, action, [], 404)
        raise NotFound(f"{resource_type} not found.")
    [resource] = await render_records(session, resource_type, [record])
    audit_read(request, caller, action, patients_of(resource_type, [record]), 200)
    return record, resource


@router.get("/{resource_type}/{resource_id}")
@CAPABILITIES.declares("read", SERVED)
async def read(
    resource_type: str, resource_id: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> FhirResponse:
    """Read one resource by its id (with its version's ETag); 404 (an OperationOutcome) when it is not one
    of the tenant's."""
    action = f"fhir.{resource_type.lower()}.read"
    record, resource = await _read_one(request, caller, session, resource_type, resource_id, action)
    return versioned_response(resource, record)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
@CAPABILITIES.declares("vread", VERSIONED)
async def vread(
    resource_type: str,
    resource_id: str,
    version_id: str,
    request: Request,
    caller: FhirClient,
    session: RawSessionDep,
) -> FhirResponse:
    """Read one version of a resource, the current one or a past one (`meta.versionId`, as its ETag names
    it); 404 (an OperationOutcome) when the resource is not one of the tenant's or has no such version."""
    if resource_type not in VERSIONED:
        raise NotFound(f"{resource_type[:40]} resources are not versioned here.")
    supported(resource_type)
    permit(caller, resource_type, Permission.READ)
    action = f"fhir.{resource_type.lower()}.vread"
    current = await load(session, resource_type, resource_id)
    wanted = int(version_id) if version_id.isdigit() and len(version_id) <= 9 else None
    record = current
    if current is not None and wanted != current.version:
        past = None
        if wanted is not None and 0 < wanted < current.version:
            model = SEARCHABLE[resource_type].model
            past = await past_version(session, resource_type, model, current.id, wanted)
        record = past
    if record is None:
        audit_read(request, caller, action, [], 404)
        if current is None:
            raise NotFound(f"{resource_type} not found.")
        raise NotFound(
            f"This {resource_type} has no version {version_id[:20]!r} "
            f"(its current version is {current.version})."
        )
    [resource] = await render_records(session, resource_type, [record])
    audit_read(request, caller, action, patients_of(resource_type, [record]), 200)
    return versioned_response(resource, record)


JSON_TYPES = ("application/fhir+json", "application/json")


class UnsupportedMediaType(DomainError):
    """The body is not in a format this endpoint reads."""

    status_code = 415


def _entry_types(body: Any) -> set[str]:
    """The resource types a bundle's entries carry (a malformed bundle is refused by the import)."""
    entries = body.get("entry") if isinstance(body, dict) else None
    types = set()
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            types.add(resource["resourceType"][:40])
    return types


@router.post("")
@CAPABILITIES.declares("transaction")
async def transaction(request: Request, caller: FhirClient, session: RawSessionDep) -> FhirResponse:
    """Import a transaction Bundle (Patient, Practitioner, Appointment upserted by identifier), all or
    nothing; answers a transaction-response Bundle, or an OperationOutcome naming the refused entry."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType("Send the Bundle as application/fhir+json.")
    try:
        body = await asyncio.to_thread(json.loads, await request.body())  # up to the body limit: off the loop
    except ValueError as exc:
        raise BadRequest("The body is not JSON.") from exc
    for resource_type in _entry_types(body):  # an entry may create or update its record
        permit(caller, resource_type, Permission.CREATE, Permission.UPDATE)
    report = await import_bundle(session, body)
    # The write's audit records commit with it (one per patient the bundle touched).
    concerned: list[uuid.UUID | None] = [*report.patients] or [None]
    await append(session, [audit_event(request, caller, "fhir.transaction", p, None) for p in concerned])
    return FhirResponse(transaction_response(report.results))
