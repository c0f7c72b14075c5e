"""FHIR R4 operations: `Patient/<id>/$everything`, one patient's record as a Bundle (the patient, their
appointments and communications, and the practitioners those appointments name).

Each kind is bounded (`EVERYTHING_LIMIT` appointments and as many communications, the most recent first):
what is left out is said in an informational OperationOutcome entry, never silently dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from api.deps import RawSessionDep
from api.integration_auth import FhirClient
from api.routers.fhir import (
    CAPABILITIES,
    FHIR_BASE,
    FhirResponse,
    audit_read,
    base_url,
    load,
    permit,
    render_records,
)
from core.errors import NotFound
from core.smart_scopes import Permission
from domain.communications.models import Communication
from domain.fhir.bundles import operation_outcome
from domain.fhir.render import as_json, model
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment

router = APIRouter(prefix=FHIR_BASE, tags=["fhir"], include_in_schema=False)
EVERYTHING_LIMIT = 1000
EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"


async def _recent(session: Any, kind: Any, patient_id: Any, newest: Any) -> tuple[list[Any], int]:
    """The patient's most recent records of one kind (at most EVERYTHING_LIMIT) and how many there are."""
    records = list(
        (
            await session.scalars(
                select(kind)
                .where(kind.patient_id == patient_id)
                .order_by(newest.desc(), kind.id)
                .limit(EVERYTHING_LIMIT)
            )
        ).all()
    )
    total = len(records)
    if total == EVERYTHING_LIMIT:
        total = await session.scalar(
            select(func.count()).select_from(kind).where(kind.patient_id == patient_id)
        )
    return records, total


@router.get("/Patient/{resource_id}/$everything")
@CAPABILITIES.operation("Patient", "$everything", EVERYTHING_DEFINITION)
async def patient_everything(
    resource_id: str, request: Request, caller: FhirClient, session: RawSessionDep
) -> FhirResponse:
    """One patient's record: the Patient, their Appointments and Communications (the most recent first,
    each kind bounded) and the Practitioners of those appointments, as a searchset Bundle."""
    permit(caller, "Patient", Permission.READ)
    for kind in ("Appointment", "Communication", "Practitioner"):
        permit(caller, kind, Permission.READ)
    patient = await load(session, "Patient", resource_id)
    if patient is None:
        audit_read(request, caller, "fhir.patient.everything", [], 404)
        raise NotFound("Patient not found.")
    appointments, appointment_count = await _recent(session, Appointment, patient.id, Appointment.start_time)
    communications, communication_count = await _recent(
        session, Communication, patient.id, Communication.created_at
    )
    practitioner_ids = {a.practitioner_id for a in appointments}
    practitioners = list(
        (
            await session.scalars(
                select(Practitioner).where(Practitioner.id.in_(practitioner_ids)).order_by(Practitioner.id)
            )
        ).all()
    )
    resources = [
        *await render_records(session, "Patient", [patient]),
        *await render_records(session, "Appointment", appointments),
        *await render_records(session, "Communication", communications),
        *await render_records(session, "Practitioner", practitioners),
    ]
    base = base_url(request)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{r.get_resource_type()}/{r.id}",
            "resource": as_json(r),
            "search": {"mode": "match" if r.get_resource_type() == "Patient" else "include"},
        }
        for r in resources
    ]
    left_out = (appointment_count - len(appointments)) + (communication_count - len(communications))
    if left_out:
        note = (
            f"{left_out} older appointment(s) or communication(s) left out (at most {EVERYTHING_LIMIT} of "
            "each)."
        )
        entries.append(
            {"resource": operation_outcome(200, note, severity="information"), "search": {"mode": "outcome"}}
        )
    audit_read(request, caller, "fhir.patient.everything", [patient.id], 200)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "total": 1,
        "link": [{"relation": "self", "url": f"{base}/Patient/{patient.id}/$everything"}],
        "entry": entries,
    }
    return FhirResponse(as_json(model(bundle)))
