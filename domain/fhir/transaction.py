"""A transaction Bundle from an EHR: patients, practitioners and appointments upserted by identifier.

- All or nothing: the bundle runs in the request's one transaction; any refused entry refuses the bundle
  (4xx, an OperationOutcome naming the entry) and nothing is stored.
- Idempotent: every entry is matched by identifier (`ifNoneExist`, `PUT Type?identifier=system|value`, or
  the identifiers the resource carries), and only fields that differ are written, so the same bundle twice
  changes nothing the second time.
- A new patient goes through the duplicate matcher: a probable match (`duplicates.match_registration`)
  gets the EHR's identifiers linked to it instead of a second record; a possible one is created, flagged
  in its `meta_data.possible_duplicates` and named in the entry's outcome, for a coordinator to review.
- `urn:uuid:` references between entries, `Patient/<id>` and conditional references
  (`Patient?identifier=system|value`) are resolved; Practitioners and Patients are imported before the
  Appointments that name them, whatever their order in the bundle.

Every write goes through the domain services the API uses (registration, booking, the appointment
lifecycle), so what follows a change there (reminders, events) follows an import too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, DomainError, NotFound, Unprocessable
from core.events import EventSource, set_event_source
from domain.enums import AppointmentStatus
from domain.fhir.entries import (
    IMPORT_ORDER,
    Entry,
    field_errors,
    identifier_query,
    identifiers_of,
    parse_bundle,
    refuse,
)
from domain.fhir.identifiers import (
    APPOINTMENT_IDS,
    PATIENT_IDS,
    PRACTITIONER_IDS,
    ExternalIds,
)
from domain.fhir.mapping import Dropped, appointment_details, patient_fields, practitioner_fields
from domain.fhir.render import FHIR_TO_APPOINTMENT_STATUS, LICENSE_SYSTEM, MRN_SYSTEM
from domain.patients import service as patients
from domain.patients.duplicates import match_registration
from domain.patients.models import Patient
from domain.patients.repository import PatientRepository
from domain.patients.schemas import PatientCreate, PatientUpdate
from domain.practitioners import service as practitioners
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import PractitionerCreate, PractitionerUpdate
from domain.scheduling import lifecycle
from domain.scheduling.models import Appointment
from domain.scheduling.schemas import AppointmentDirectCreate, AppointmentUpdate
from domain.scheduling.service import book_appointment

SOURCE = "fhir"
S = AppointmentStatus
UPCOMING = frozenset({S.BOOKED, S.CONFIRMED})
# How far along the lifecycle a status is (cancelled and no-show are ends of their own).
PROGRESS = {S.BOOKED: 0, S.CONFIRMED: 0, S.CHECKED_IN: 1, S.COMPLETED: 2}
# How an imported appointment reaches a status through the lifecycle (each step a legal transition).
PATHS: dict[AppointmentStatus, tuple[AppointmentStatus, ...]] = {
    S.BOOKED: (),
    S.CHECKED_IN: (S.CHECKED_IN,),
    S.COMPLETED: (S.CHECKED_IN, S.COMPLETED),
    S.NO_SHOW: (S.NO_SHOW,),
    S.CANCELLED: (S.CANCELLED,),
}


@dataclass
class EntryResult:
    """What happened to one entry: the HTTP-like status, the record, and a note for its outcome."""

    status: str
    location: str | None = None
    last_modified: datetime | None = None
    note: str | None = None
    dropped: list[Dropped] = field(default_factory=list)  # optional elements left out, and why


@dataclass
class ImportReport:
    """The bundle's outcome: one result per entry (in the bundle's order) and the patients it touched."""

    results: list[EntryResult]
    patients: list[uuid.UUID] = field(default_factory=list)


# ---- the importer ---------------------------------------------------------------------------------------


class BundleImport:
    """Imports one bundle's entries in one session (the request's transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.resolved: dict[str, tuple[str, uuid.UUID]] = {}  # fullUrl -> (type, id)
        self.patients_touched: dict[uuid.UUID, None] = {}
        self.dropped: dict[int, list[Dropped]] = {}  # entry index -> what it had left out

    async def run(self, entries: list[Entry]) -> ImportReport:
        """Import every entry (Practitioners, then Patients, then Appointments); any refusal raises."""
        results: dict[int, EntryResult] = {}
        handlers: dict[str, Callable[[Entry], Any]] = {
            "Practitioner": self._practitioner,
            "Patient": self._patient,
            "Appointment": self._appointment,
        }
        for resource_type in IMPORT_ORDER:
            for entry in (e for e in entries if e.type == resource_type):
                try:
                    results[entry.index] = await handlers[resource_type](entry)
                    results[entry.index].dropped = self.dropped.pop(entry.index, [])
                except DomainError as exc:
                    raise refuse(entry, exc) from exc
                except ValidationError as exc:
                    raise refuse(entry, Unprocessable(field_errors(exc))) from exc
        return ImportReport([results[e.index] for e in entries], list(self.patients_touched))

    # -- matching --

    async def _match(
        self, entry: Entry, ids: ExternalIds, own: Callable[[str, str], Any] | None
    ) -> tuple[uuid.UUID | None, list[tuple[str, str]]]:
        """The record an entry names (by its condition, its URL or its identifiers) and its identifiers."""
        identifiers = identifiers_of(entry.resource)
        if entry.method == "PUT" and entry.url.startswith(f"{entry.type}/"):  # an update by id
            try:
                by_id = uuid.UUID(entry.url.removeprefix(f"{entry.type}/"))
            except ValueError as exc:
                raise NotFound(f"{entry.type} not found.") from exc
            return by_id, identifiers
        if entry.method == "PUT":
            path, _, query = entry.url.partition("?")
            if path != entry.type:
                raise Unprocessable("A PUT url must be `Type?identifier=system|value` (conditional update).")
            conditions = [identifier_query(query)]
        elif entry.if_none_exist:
            conditions = [identifier_query(entry.if_none_exist)]
        else:
            conditions = identifiers
        if not conditions:
            raise Unprocessable(
                "The resource needs an identifier (system and value), so that a re-import "
                "finds it instead of creating it again."
            )
        found: set[uuid.UUID] = set()
        for system, value in conditions:
            record_id = await own(system, value) if own else None
            if record_id is None:
                record_id = await ids.find(self.session, system, value)
            if record_id is not None:
                found.add(record_id)
        if len(found) > 1:
            raise Conflict("Its identifiers name different records; nothing was imported.")
        all_identifiers = list(dict.fromkeys([*conditions, *identifiers]))
        return (found.pop() if found else None), all_identifiers

    async def _claim(self, ids: ExternalIds, owner: uuid.UUID, identifiers: list[tuple[str, str]]) -> bool:
        """Give the record the identifiers it lacks (refused when another record holds one)."""
        added = False
        for system, value in identifiers:
            if system in (MRN_SYSTEM, LICENSE_SYSTEM):
                continue
            holder = await ids.find(self.session, system, value)
            if holder is None:
                await ids.add(self.session, owner, system, value)
                added = True
            elif holder != owner:
                raise Conflict("One of its identifiers already names another record.")
        return added

    def _resolve(self, entry: Entry, result: EntryResult, record_id: uuid.UUID) -> EntryResult:
        if entry.full_url:
            self.resolved[entry.full_url] = (entry.type, record_id)
        result.location = f"{entry.type}/{record_id}"
        return result

    # -- patients --

    async def _own_patient(self, system: str, value: str) -> uuid.UUID | None:
        if system != MRN_SYSTEM:
            return None
        patient = await PatientRepository(self.session).by_mrn(value)
        return patient.id if patient else None

    async def _survivor(self, patient_id: uuid.UUID) -> Patient:
        patient = await PatientRepository(self.session).get_or_404(patient_id)
        if patient.merged_into_id is not None:  # merges redirect straight to the surviving record
            patient = await PatientRepository(self.session).get_or_404(patient.merged_into_id)
        return patient

    async def _patient(self, entry: Entry) -> EntryResult:
        repo = PatientRepository(self.session)
        found, identifiers = await self._match(entry, PATIENT_IDS, self._own_patient)
        fields = patient_fields(entry.resource, self.dropped.setdefault(entry.index, []))
        if found is not None:
            patient = await self._survivor(found)
            added = await self._claim(PATIENT_IDS, patient.id, identifiers)
            changed = {k: v for k, v in fields.items() if getattr(patient, k) != v}
            if entry.method == "PUT" and changed:
                patient = await patients.update_patient(repo, patient.id, PatientUpdate(**changed))
            self.patients_touched[patient.id] = None
            note = "Linked the identifiers it lacked." if added else None
            result = EntryResult("200 OK", last_modified=patient.updated_at, note=note)
            return self._resolve(entry, result, patient.id)
        mrn = next((v for s, v in identifiers if s == MRN_SYSTEM), None)
        data = PatientCreate(**fields, mrn=mrn)
        candidate = Patient(**data.model_dump(exclude={"tenant_id", "mrn"}), mrn=data.mrn or "")
        match = await match_registration(repo, candidate)
        if match.probable is not None:
            patient = await self._survivor(match.probable.id)
            await self._claim(PATIENT_IDS, patient.id, identifiers)
            self.patients_touched[patient.id] = None
            note = (
                "Matched an existing patient by demographics; the identifiers were linked to it rather than "
                "creating a duplicate."
            )
            result = EntryResult("200 OK", last_modified=patient.updated_at, note=note)
            return self._resolve(entry, result, patient.id)
        possible = [str(p.id) for p in match.possible]
        if possible:
            data.meta_data = {**data.meta_data, "possible_duplicates": possible, "imported_from": SOURCE}
        patient = await patients.create_patient(repo, data)
        await self._claim(PATIENT_IDS, patient.id, identifiers)
        self.patients_touched[patient.id] = None
        note = (
            f"Created; {len(possible)} possible duplicate(s) flagged for review "
            "(meta_data.possible_duplicates)."
            if possible
            else None
        )
        result = EntryResult("201 Created", last_modified=patient.updated_at, note=note)
        return self._resolve(entry, result, patient.id)

    # -- practitioners --

    async def _own_practitioner(self, system: str, value: str) -> uuid.UUID | None:
        if system != LICENSE_SYSTEM:
            return None
        return await self.session.scalar(select(Practitioner.id).where(Practitioner.license_number == value))

    async def _practitioner(self, entry: Entry) -> EntryResult:
        repo = PractitionerRepository(self.session)
        found, identifiers = await self._match(entry, PRACTITIONER_IDS, self._own_practitioner)
        fields = practitioner_fields(entry.resource, identifiers)
        if found is not None:
            practitioner = await repo.get_or_404(found)
            await self._claim(PRACTITIONER_IDS, practitioner.id, identifiers)
            changed = {k: v for k, v in fields.items() if getattr(practitioner, k) != v}
            if entry.method == "PUT" and changed:
                practitioner = await practitioners.update_practitioner(
                    repo, practitioner.id, PractitionerUpdate(**changed)
                )
            result = EntryResult("200 OK", last_modified=practitioner.updated_at)
            return self._resolve(entry, result, practitioner.id)
        practitioner = await practitioners.create_practitioner(repo, PractitionerCreate(**fields))
        await self._claim(PRACTITIONER_IDS, practitioner.id, identifiers)
        result = EntryResult("201 Created", last_modified=practitioner.updated_at)
        return self._resolve(entry, result, practitioner.id)

    # -- appointments --

    async def _reference(self, reference: str, expected: str) -> uuid.UUID:
        """Our id of the record a reference names: an entry of the bundle, `Type/<id>`, or
        `Type?identifier=system|value`."""
        if reference in self.resolved:
            resource_type, record_id = self.resolved[reference]
            if resource_type != expected:
                raise Unprocessable(f"The reference to a {expected} names a {resource_type}.")
            return record_id
        if reference.startswith("urn:uuid:"):
            raise Unprocessable(f"A {expected} reference names no entry of the Bundle.")
        path, _, query = reference.partition("?")
        if path != expected and not path.startswith(f"{expected}/"):
            raise Unprocessable(f"A participant reference must name a {expected}.")
        if query:
            system, value = identifier_query(query)
            ids = PATIENT_IDS if expected == "Patient" else PRACTITIONER_IDS
            own = self._own_patient if expected == "Patient" else self._own_practitioner
            matched = await own(system, value) or await ids.find(self.session, system, value)
            if matched is None:
                raise Unprocessable(f"No {expected} has the identifier its reference names.")
            return matched
        try:
            return uuid.UUID(path.split("/", 1)[1])
        except (ValueError, IndexError) as exc:
            raise Unprocessable(f"A {expected} reference must be {expected}/<id>.") from exc

    async def _participants(self, resource: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
        patient_id = practitioner_id = None
        for participant in resource.get("participant") or []:
            reference = (participant.get("actor") or {}).get("reference") or ""
            kind = reference.partition("/")[0].partition("?")[0]
            if reference in self.resolved:
                kind = self.resolved[reference][0]
            elif reference.startswith("urn:uuid:"):
                raise Unprocessable("A participant reference names no entry of the Bundle.")
            if kind == "Patient" and patient_id is None:
                patient_id = await self._reference(reference, "Patient")
            elif kind == "Practitioner" and practitioner_id is None:
                practitioner_id = await self._reference(reference, "Practitioner")
        if patient_id is None or practitioner_id is None:
            raise Unprocessable("An appointment needs a Patient and a Practitioner participant.")
        patient = await self._survivor(patient_id)
        return patient.id, practitioner_id

    async def _appointment(self, entry: Entry) -> EntryResult:
        found, identifiers = await self._match(entry, APPOINTMENT_IDS, None)
        resource = entry.resource
        status = FHIR_TO_APPOINTMENT_STATUS.get(str(resource.get("status")))
        if status is None:
            raise Unprocessable(
                "Its status cannot be imported (booked, pending, proposed, arrived, checked-in, "
                "fulfilled, cancelled and noshow can)."
            )
        start, end = resource.get("start"), resource.get("end")
        if not start or not end:
            raise Unprocessable("An appointment needs a start and an end.")
        details = appointment_details(resource)
        if found is not None:
            appointment = await self.session.scalar(select(Appointment).where(Appointment.id == found))
            if appointment is None:
                raise NotFound("Appointment not found.")
            self.patients_touched[appointment.patient_id] = None
            await self._claim(APPOINTMENT_IDS, appointment.id, identifiers)
            if entry.method == "PUT":
                appointment = await self._update_appointment(appointment, status, start, end, details)
            result = EntryResult("200 OK", last_modified=appointment.updated_at)
            return self._resolve(entry, result, appointment.id)
        patient_id, practitioner_id = await self._participants(resource)
        self.patients_touched[patient_id] = None
        if status is S.CANCELLED:  # an appointment we never had, already cancelled: nothing to book
            return EntryResult("200 OK", note="A cancelled appointment unknown here: not imported.")
        data = AppointmentDirectCreate(
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            start_time=start,
            end_time=end,
            source_channel=SOURCE,
            **details,
        )
        appointment = await book_appointment(self.session, data)
        await self._claim(APPOINTMENT_IDS, appointment.id, identifiers)
        for step in PATHS[status]:
            appointment = await lifecycle.update_appointment(
                self.session, appointment.id, AppointmentUpdate(status=step)
            )
        result = EntryResult("201 Created", last_modified=appointment.updated_at)
        return self._resolve(entry, result, appointment.id)

    async def _update_appointment(
        self,
        appointment: Appointment,
        status: AppointmentStatus,
        start: str,
        end: str,
        details: dict[str, Any],
    ) -> Appointment:
        """Bring an appointment in line with the EHR's: details, times, then status (only what differs).

        An appointment still to come (booked, confirmed) moves to the EHR's times; a finished one keeps its
        times (history). A status only moves forward: an EHR behind us (`booked` for our checked-in
        appointment) changes nothing, a contradiction (`cancelled` for a completed one) refuses the bundle."""
        times = AppointmentUpdate(start_time=start, end_time=end)  # type: ignore[arg-type]
        current = AppointmentStatus(appointment.status)
        changed: dict[str, Any] = {k: v for k, v in details.items() if getattr(appointment, k) != v}
        moved = (times.start_time, times.end_time) != (appointment.start_time, appointment.end_time)
        if moved and current in UPCOMING:
            changed.update(start_time=times.start_time, end_time=times.end_time)
        if changed:
            appointment = await lifecycle.update_appointment(
                self.session, appointment.id, AppointmentUpdate(**changed)
            )
        if current is status or (
            current in PROGRESS and status in PROGRESS and PROGRESS[status] <= PROGRESS[current]
        ):
            return appointment  # already there, or the EHR has not caught up with us
        path = PATHS[status]
        for step in path[path.index(current) + 1 :] if current in path else path:
            appointment = await lifecycle.update_appointment(
                self.session, appointment.id, AppointmentUpdate(status=step)
            )
        return appointment


async def import_bundle(session: AsyncSession, body: Any) -> ImportReport:
    """Import a transaction Bundle into the session's tenant, all or nothing (the caller's transaction)."""
    entries = await asyncio.to_thread(parse_bundle, body)  # fhir.resources validation is CPU: off the loop
    set_event_source(session, EventSource.FHIR)  # the events its changes emit say they came from the EHR
    return await BundleImport(session).run(entries)


async def import_resource(
    session: AsyncSession,
    resource: dict[str, Any],
    *,
    method: str,
    url: str,
    if_none_exist: str | None = None,
) -> EntryResult:
    """Create or update one resource as a transaction entry of its own would (`POST Type`, `PUT Type/<id>`,
    `PUT Type?identifier=...`): matched by identifier, through the same domain services and events."""
    entries = await asyncio.to_thread(
        parse_bundle, _single_entry_bundle(resource, method, url, if_none_exist)
    )
    set_event_source(session, EventSource.FHIR)
    try:
        report = await BundleImport(session).run(entries)
    except DomainError as exc:  # one resource, not an entry of a bundle: its refusal names no entry
        detail = exc.detail.removeprefix(f"entry[0] ({entries[0].type}): ")
        raise type(exc)(detail, extra=exc.extra) from exc
    return report.results[0]


def _single_entry_bundle(
    resource: dict[str, Any], method: str, url: str, if_none_exist: str | None
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "url": url}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": resource, "request": request}],
    }
