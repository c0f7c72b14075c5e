"""FHIR R4 Subscription rest-hook notifications from an EHR, turned into domain events.

An EHR with a Subscription on Encounters (criteria such as `Encounter?status=finished`) notifies the
endpoint given in `channel.endpoint`. R4 allows three shapes, all accepted:
- an empty body (`channel.payload` unset): a ping naming nothing, acknowledged, emitting nothing;
- the resource itself (`payload: application/fhir+json`; POSTed, or PUT to `<endpoint>/Encounter/<id>`);
- a Bundle (`history`, `collection`, or the subscriptions backport's `subscription-notification`) whose
  entries carry the resources (a SubscriptionStatus entry and other resource types are skipped).

A Patient, Practitioner or Appointment in a notification (a Subscription on `Patient?`, `Appointment?`...)
is upserted by its first identifier exactly as a transaction Bundle's conditional update is
(`PUT Patient?identifier=system|value`, `domain.fhir.transaction`): a new patient goes through the duplicate
matcher, only fields that differ are written, and the domain's own services emit the events
(`patient.registered`/`updated`, `appointment.booked`/`rescheduled`/`cancelled`/...), so a repeated
notification changes nothing and emits nothing. They are imported before the notification's Encounters, so
an Encounter may name a patient the same notification brings. A resource without an identifier cannot be
matched and refuses the notification (422); so does a reference this service cannot resolve.

An Encounter `finished` emits `encounter.discharged`; `in-progress` or `arrived` emit `encounter.admitted`.
The facts are those an HL7 A01/A03 gives (`core.events.FACTS`): the procedures (Procedures of the same
notification whose `encounter` names it, contained ones, and `diagnosis` entries that reference a
Procedure), the class, the service type, the location and the practitioner. Each event is keyed
`fhir:Encounter/<id>:<type>` so a repeated notification emits once. The patient (`Encounter.subject`) must
be known here (`Patient/<id>`, a conditional reference, or a logical `identifier`); a notification naming
an unknown patient is refused whole (422), nothing emitted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadRequest, Unprocessable
from core.events import EventSource, EventType, emit, set_event_source
from domain.fhir.entries import IMPORT_ORDER, Entry, identifiers_of
from domain.fhir.identifiers import PATIENT_IDS, PRACTITIONER_IDS
from domain.fhir.render import MRN_SYSTEM, model
from domain.fhir.transaction import BundleImport
from domain.patients.models import Patient

ENCOUNTER_EVENTS = {
    "finished": EventType.ENCOUNTER_DISCHARGED,
    "in-progress": EventType.ENCOUNTER_ADMITTED,
    "arrived": EventType.ENCOUNTER_ADMITTED,
}
NOTIFICATION_BUNDLES = {"history", "collection", "subscription-notification", "searchset", "message"}
MAX_ENTRIES = 500


@dataclass
class HookReport:
    """What a notification did: the events emitted (new ones), repeats, and entries it skipped."""

    emitted: int = 0
    repeated: int = 0
    imported: int = 0  # records matched and brought up to date, or created (their services emit the events)
    skipped: list[str] = field(default_factory=list)
    patients: list[uuid.UUID] = field(default_factory=list)


def _resources(body: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """(fullUrl, resource) of each resource the notification carries."""
    if body is None:
        return []
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadRequest("A notification is empty, a FHIR resource, or a Bundle of them (JSON).")
    if body["resourceType"] != "Bundle":
        return [(None, body)]
    if body.get("type") not in NOTIFICATION_BUNDLES:
        raise BadRequest(f"A notification Bundle is of type {', '.join(sorted(NOTIFICATION_BUNDLES))}.")
    entries = body.get("entry") or []
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise BadRequest(f"A notification Bundle carries at most {MAX_ENTRIES} entries.")
    found = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            found.append((entry.get("fullUrl"), resource))
    return found


def _validate(resource: dict[str, Any], where: str) -> None:
    try:
        model(resource)
    except (ValidationError, KeyError, ValueError) as exc:
        problems = (
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])
            if isinstance(exc, ValidationError)
            else "unknown resource type"
        )
        raise BadRequest(f"{where} is not valid FHIR R4: {problems}") from exc


def _codes(concept: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """Codes and display names of a CodeableConcept."""
    if not concept:
        return [], []
    codings = concept.get("coding") or []
    codes = [str(c["code"])[:100] for c in codings if c.get("code")]
    names = [str(c["display"])[:200] for c in codings if c.get("display")]
    if concept.get("text"):
        names.append(str(concept["text"])[:200])
    return codes, names


async def _patient(session: AsyncSession, subject: dict[str, Any] | None) -> Patient:
    """Our patient an Encounter's subject names (after merges); 422 when none."""
    subject = subject or {}
    reference = str(subject.get("reference") or "")
    patient_id: uuid.UUID | None = None
    identifier = subject.get("identifier") or {}
    if reference.startswith("Patient?identifier="):
        system, _, value = reference.partition("=")[2].partition("|")
        identifier = {"system": system, "value": value}
    elif reference.startswith("Patient/"):
        try:
            patient_id = uuid.UUID(reference.removeprefix("Patient/"))
        except ValueError:
            patient_id = None
    if patient_id is None and identifier.get("system") and identifier.get("value"):
        system, value = str(identifier["system"]), str(identifier["value"])
        if system == MRN_SYSTEM:
            patient_id = await session.scalar(select(Patient.id).where(Patient.mrn == value.upper()))
        else:
            patient_id = await PATIENT_IDS.find(session, system, value)
    patient = await session.scalar(select(Patient).where(Patient.id == patient_id)) if patient_id else None
    while patient is not None and patient.merged_into_id is not None:
        patient = await session.scalar(select(Patient).where(Patient.id == patient.merged_into_id))
    if patient is None:
        raise Unprocessable(
            "Encounter.subject names no patient known here: import the patient first (POST /fhir/R4)."
        )
    return patient


async def _practitioner_id(session: AsyncSession, encounter: dict[str, Any]) -> uuid.UUID | None:
    for participant in encounter.get("participant") or []:
        individual = participant.get("individual") or {}
        reference = str(individual.get("reference") or "")
        if reference.startswith("Practitioner/"):
            try:
                return uuid.UUID(reference.removeprefix("Practitioner/"))
            except ValueError:
                pass
        identifier = individual.get("identifier") or {}
        if identifier.get("system") and identifier.get("value"):
            found = await PRACTITIONER_IDS.find(session, str(identifier["system"]), str(identifier["value"]))
            if found is not None:
                return found
    return None


def _procedures(
    encounter: dict[str, Any], full_url: str | None, resources: list[tuple[str | None, dict[str, Any]]]
) -> tuple[list[str], list[str]]:
    """The encounter's procedures: those of the notification that name it, contained ones, diagnoses."""
    names_of_encounter = {f"Encounter/{encounter.get('id')}"} | ({full_url} if full_url else set())
    procedures = [
        r
        for _, r in resources
        if r.get("resourceType") == "Procedure"
        and (r.get("encounter") or {}).get("reference") in names_of_encounter
    ]
    procedures += [r for r in encounter.get("contained") or [] if r.get("resourceType") == "Procedure"]
    codes: list[str] = []
    names: list[str] = []
    for procedure in procedures:
        found_codes, found_names = _codes(procedure.get("code"))
        codes += found_codes
        names += found_names
    for diagnosis in encounter.get("diagnosis") or []:
        condition = diagnosis.get("condition") or {}
        if str(condition.get("reference") or "").startswith("Procedure") and condition.get("display"):
            names.append(str(condition["display"])[:200])
    return list(dict.fromkeys(codes)), list(dict.fromkeys(names))


def _when(encounter: dict[str, Any], type: EventType) -> datetime | None:
    period = encounter.get("period") or {}
    raw = period.get("end" if type is EventType.ENCOUNTER_DISCHARGED else "start")
    if not raw or "T" not in str(raw):
        return None
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or when > datetime.now(UTC):
        return None
    return when


def _upsert_entry(index: int, full_url: str | None, resource: dict[str, Any], where: str) -> Entry:
    """The conditional update (`PUT <Type>?identifier=system|value`) a notified resource amounts to."""
    _validate(resource, where)  # a transaction Bundle is validated whole; a notification's entries one by one
    identifiers = identifiers_of(resource)
    if not identifiers:
        raise Unprocessable(
            f"{where}: a notified {resource['resourceType']} needs an identifier to be matched."
        )
    system, value = identifiers[0]
    url = f"{resource['resourceType']}?identifier={quote(system, safe=':/')}|{quote(value, safe='')}"
    return Entry(index, full_url, "PUT", url, None, resource)


async def receive_notification(session: AsyncSession, body: Any) -> HookReport:
    """Import the records a notification carries and emit its encounters' events, in the session's
    transaction (all or nothing)."""
    resources = _resources(body)
    report = HookReport()
    set_event_source(session, EventSource.FHIR)
    in_bundle = isinstance(body, dict) and body.get("resourceType") == "Bundle"
    upserts = [
        _upsert_entry(index, full_url, resource, f"entry[{index}] ({resource['resourceType']})")
        for index, (full_url, resource) in enumerate(resources)
        if resource.get("resourceType") in IMPORT_ORDER
    ]
    if upserts:
        imported = await BundleImport(session).run(upserts)
        report.imported = len(imported.results)
        report.patients.extend(imported.patients)
    for index, (full_url, resource) in enumerate(resources):
        resource_type = str(resource.get("resourceType"))
        where = f"entry[{index}] ({resource_type})" if in_bundle else resource_type
        if resource_type in IMPORT_ORDER:
            continue
        if resource_type != "Encounter":
            if resource_type not in ("SubscriptionStatus", "Parameters", "Procedure"):
                report.skipped.append(f"{where}: not a Patient, Practitioner, Appointment or Encounter")
            continue
        _validate(resource, where)
        type = ENCOUNTER_EVENTS.get(str(resource.get("status")))
        if type is None:
            report.skipped.append(f"{where}: its status is not an admission or a discharge")
            continue
        if not resource.get("id"):
            raise Unprocessable(f"{where}: an Encounter needs its id (its record here).")
        patient = await _patient(session, resource.get("subject"))
        codes, names = _procedures(resource, full_url, resources)
        service_codes, service_names = _codes(resource.get("serviceType"))
        locations = [
            str((loc.get("location") or {}).get("display"))[:200]
            for loc in resource.get("location") or []
            if (loc.get("location") or {}).get("display")
        ]
        facts: dict[str, Any] = {
            "encounter_class": (resource.get("class") or {}).get("code"),
            "speciality": next(iter(service_names + service_codes), None),
            "location": locations[0] if locations else None,
            "practitioner_id": await _practitioner_id(session, resource),
            "procedure_codes": codes,
            "procedure_names": names,
        }
        encounter_id = str(resource["id"])[:64]
        emitted = await emit(
            session,
            type=type,
            patient_id=patient.id,
            subject=("encounter", encounter_id),
            facts={k: v for k, v in facts.items() if v not in (None, [])},
            source=EventSource.FHIR,
            dedupe_key=f"fhir:Encounter/{encounter_id}:{type.value}",
            occurred_at=_when(resource, type),
        )
        if emitted is None:
            report.repeated += 1
        else:
            report.emitted += 1
        report.patients.append(patient.id)
    return report
