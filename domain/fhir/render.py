"""Our records as FHIR resources, built and validated with the `fhir.resources` R4B models.

R4B (4.3) and R4 (4.0.1) define Patient, Practitioner, Appointment, Communication, Bundle and
OperationOutcome alike, so what is rendered here is valid R4 too; `fhir.resources` 8 ships R4B (and R5), not
R4 (its R4 releases need pydantic 1).

Identifiers: a patient's MRN is `urn:prm:mrn|<MRN>`, a practitioner's license number
`urn:prm:license-number|<number>`, a message's provider id `urn:prm:provider-message-id|<id>`; every
identifier an EHR gave a record (stored in `*_identifiers`) is rendered as given.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

from domain.communications.models import Communication
from domain.enums import AppointmentStatus, CommunicationStatus, Direction, PatientStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment

MRN_SYSTEM = "urn:prm:mrn"
LICENSE_SYSTEM = "urn:prm:license-number"
PROVIDER_MESSAGE_SYSTEM = "urn:prm:provider-message-id"
CHANNEL_SYSTEM = "urn:prm:channel"
APPOINTMENT_TYPE_SYSTEM = "urn:prm:appointment-type"

# Our appointment lifecycle in FHIR's Appointment.status, and back (an import of each FHIR status).
APPOINTMENT_STATUS_TO_FHIR = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CHECKED_IN: "checked-in",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
}
FHIR_TO_APPOINTMENT_STATUS = {
    "proposed": AppointmentStatus.BOOKED,
    "pending": AppointmentStatus.BOOKED,
    "booked": AppointmentStatus.BOOKED,
    "arrived": AppointmentStatus.CHECKED_IN,
    "checked-in": AppointmentStatus.CHECKED_IN,
    "fulfilled": AppointmentStatus.COMPLETED,
    "cancelled": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW,
}
COMMUNICATION_STATUS_TO_FHIR = {
    CommunicationStatus.PENDING: "preparation",
    CommunicationStatus.SCHEDULED: "preparation",
    CommunicationStatus.QUEUED: "in-progress",
    CommunicationStatus.SENT: "completed",
    CommunicationStatus.DELIVERED: "completed",
    CommunicationStatus.READ: "completed",
    CommunicationStatus.RECEIVED: "completed",
    CommunicationStatus.FAILED: "not-done",
}

Identifier = tuple[str, str]  # (system, value)


def model(resource: dict[str, Any]) -> Resource:
    """Validate a resource (a dict with `resourceType`) with its `fhir.resources` model."""
    validated = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert isinstance(validated, Resource)
    return validated


def as_json(resource: Resource) -> dict[str, Any]:
    """A validated resource as JSON (FHIR leaves empty elements out)."""
    return resource.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


def _instant(value: datetime) -> str:
    return value.isoformat()


def _meta(updated_at: datetime, version: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"lastUpdated": _instant(updated_at)}
    if version is not None:
        meta["versionId"] = str(version)
    return meta


def etag(version: int) -> str:
    """The ETag of a record's version (weak, as FHIR has it): `W/"3"`."""
    return f'W/"{version}"'


# Identifier types (HL7 v2 table 0203): a receiving system tells an MRN from other numbers by its type.
IDENTIFIER_TYPES = {
    MRN_SYSTEM: ("MR", "Medical record number"),
    LICENSE_SYSTEM: ("MD", "Medical License number"),
}
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _identifier(system: str, value: str) -> dict[str, Any]:
    identifier: dict[str, Any] = {"system": system, "value": value}
    if system in IDENTIFIER_TYPES:
        code, display = IDENTIFIER_TYPES[system]
        identifier["type"] = {
            "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": code, "display": display}]
        }
    return identifier


def _identifiers(own: Iterable[Identifier], external: Iterable[Identifier]) -> list[dict[str, Any]]:
    seen: dict[Identifier, None] = {}
    for pair in (*own, *external):
        seen.setdefault(pair, None)
    return [_identifier(system, value) for system, value in seen]


def reference(resource_type: str, record_id: uuid.UUID) -> dict[str, str]:
    """A relative reference, `Patient/<id>`."""
    return {"reference": f"{resource_type}/{record_id}"}


def _telecom(phones: Iterable[tuple[str | None, str]], email: str | None) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = [
        {"system": "phone", "value": value, "use": use, "rank": rank}
        for rank, (value, use) in enumerate(((v, u) for v, u in phones if v), start=1)
    ]
    if email:
        items.append({"system": "email", "value": email})
    return items or None


def _name(first: str, middle: str | None, last: str) -> list[dict[str, Any]]:
    given = [part for part in (first, middle) if part]
    return [{"use": "official", "family": last, "given": given}]


def patient_resource(patient: Patient, external: Iterable[Identifier] = ()) -> Resource:
    """A patient as a FHIR Patient. A merged record is inactive and links to the record it was merged into."""
    address = {
        "line": [line for line in (patient.address_line1, patient.address_line2) if line] or None,
        "city": patient.city,
        "state": patient.state,
        "postalCode": patient.postal_code,
        "country": patient.country,
    }
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": _meta(patient.updated_at, patient.version),
        "identifier": _identifiers([(MRN_SYSTEM, patient.mrn)], external),
        "active": patient.status == PatientStatus.ACTIVE and patient.merged_into_id is None,
        "name": _name(patient.first_name, patient.middle_name, patient.last_name),
        "telecom": _telecom(
            [(patient.phone_primary, "mobile"), (patient.phone_secondary, "home")], patient.email_primary
        ),
        "gender": patient.gender,
        "birthDate": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        "address": [address] if any(address.values()) else None,
        "communication": (
            [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": patient.preferred_language}]}}]
            if patient.preferred_language
            else None
        ),
    }
    if patient.status == PatientStatus.DECEASED:
        resource["deceasedBoolean"] = True
    if patient.merged_into_id is not None:
        resource["link"] = [{"other": reference("Patient", patient.merged_into_id), "type": "replaced-by"}]
    return model(resource)


def practitioner_resource(practitioner: Practitioner, external: Iterable[Identifier] = ()) -> Resource:
    """A practitioner as a FHIR Practitioner."""
    own = [(LICENSE_SYSTEM, practitioner.license_number)] if practitioner.license_number else []
    qualification = [
        {"code": {"text": text}} for text in (practitioner.qualification, practitioner.speciality) if text
    ]
    return model(
        {
            "resourceType": "Practitioner",
            "id": str(practitioner.id),
            "meta": _meta(practitioner.updated_at, practitioner.version),
            "identifier": _identifiers(own, external) or None,
            "active": practitioner.is_active,
            "name": _name(practitioner.first_name, practitioner.middle_name, practitioner.last_name),
            "telecom": _telecom([(practitioner.phone_primary, "work")], practitioner.email_primary),
            "gender": practitioner.gender,
            "qualification": qualification or None,
        }
    )


def appointment_resource(appointment: Appointment, external: Iterable[Identifier] = ()) -> Resource:
    """An appointment as a FHIR Appointment, its patient and practitioner as participants."""
    status = APPOINTMENT_STATUS_TO_FHIR[AppointmentStatus(appointment.status)]
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(appointment.id),
        "meta": _meta(appointment.updated_at, appointment.version),
        "identifier": _identifiers([], external) or None,
        "status": status,
        "start": _instant(appointment.start_time),
        "end": _instant(appointment.end_time),
        "minutesDuration": max(1, int((appointment.end_time - appointment.start_time).total_seconds() // 60)),
        "created": _instant(appointment.created_at),
        "appointmentType": (
            {"coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": appointment.appointment_type}]}
            if appointment.appointment_type
            else None
        ),
        "reasonCode": [{"text": appointment.reason_text}] if appointment.reason_text else None,
        "cancelationReason": (
            {"text": appointment.cancellation_reason} if appointment.cancellation_reason else None
        ),
        "participant": [
            {
                "actor": reference("Patient", appointment.patient_id),
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": reference("Practitioner", appointment.practitioner_id),
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    return model(resource)


def communication_resource(message: Communication) -> Resource:
    """A message as a FHIR Communication: its channel as `medium`, its text as the payload."""
    patient = reference("Patient", message.patient_id) if message.patient_id else None
    inbound = message.direction == Direction.INBOUND
    status = COMMUNICATION_STATUS_TO_FHIR[CommunicationStatus(message.status)]
    sent = message.created_at if inbound else message.sent_at
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(message.id),
        "meta": _meta(message.updated_at),
        "identifier": (
            [{"system": PROVIDER_MESSAGE_SYSTEM, "value": message.provider_message_id}]
            if message.provider_message_id
            else None
        ),
        "status": status,
        "statusReason": {"text": message.error_code} if status == "not-done" and message.error_code else None,
        "medium": [{"coding": [{"system": CHANNEL_SYSTEM, "code": message.channel}]}],
        "subject": patient,
        "about": [reference("Appointment", message.appointment_id)] if message.appointment_id else None,
        "sent": _instant(sent) if sent else None,
        "received": _instant(message.delivered_at) if message.delivered_at and not inbound else None,
        "recipient": [patient] if patient and not inbound else None,
        "sender": patient if inbound else None,
        "payload": [{"contentString": message.message}] if message.message else None,
    }
    return model(resource)
