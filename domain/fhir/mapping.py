"""FHIR resources (as an EHR sends them) -> the fields of our records, validated as the coordinator API
validates them (phone numbers normalised to E.164, names and addresses bounded, ...). Only the fields a
resource carries are returned, so an update never clears what the EHR did not send."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import Unprocessable
from core.languages import normalise
from domain.fhir.render import LICENSE_SYSTEM
from domain.patients.schemas import PatientCreate
from domain.practitioners.schemas import PractitionerCreate

FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARTIAL_BIRTH_DATE = (
    "birthDate must be a full date (YYYY-MM-DD): a patient's record holds the day of birth (it "
    "identifies the patient and finds duplicates), which a year or a year and month alone does not give. "
    "Send the full date, or leave birthDate out."
)


def _official_name(resource: dict[str, Any]) -> dict[str, Any]:
    names = resource.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    if not official.get("family") or not official.get("given"):
        raise Unprocessable("A name with a family name and a given name is needed.")
    return dict(official)


def _person_names(resource: dict[str, Any]) -> dict[str, Any]:
    """First, middle and last name from the resource's official name (the first given name is the first
    name, the others the middle name)."""
    name = _official_name(resource)
    given = list(name["given"])
    return {"first_name": given[0], "middle_name": " ".join(given[1:]) or None, "last_name": name["family"]}


def _telecom(resource: dict[str, Any], system: str) -> list[str]:
    return [t["value"] for t in resource.get("telecom") or [] if t.get("system") == system and t.get("value")]


@dataclass(frozen=True)
class Dropped:
    """An optional element left out of an import because it cannot be used (FHIR practice is lenient
    there): where it is (a FHIRPath expression) and why. Told back as an informational issue."""

    expression: str
    reason: str


def _languages(resource: dict[str, Any], dropped: list[Dropped]) -> str | None:
    """The first usable language of `communication` (BCP 47); every unusable one is dropped and noted."""
    chosen = None
    for index, communication in enumerate(resource.get("communication") or []):
        codings = (communication.get("language") or {}).get("coding") or []
        codes = [str(c["code"]) for c in codings if c.get("code")]
        usable = []
        for code in codes:
            try:
                usable.append(normalise(code))
            except ValueError:
                continue
        if usable:
            chosen = chosen or usable[0]
        elif codes:
            dropped.append(
                Dropped(
                    f"Patient.communication[{index}].language",
                    "Not a BCP 47 language tag (e.g. 'es' or 'es-MX'): the language was left out and the "
                    "patient imported without it.",
                )
            )
    return chosen


def patient_fields(resource: dict[str, Any], dropped: list[Dropped] | None = None) -> dict[str, Any]:
    """Our patient fields from a FHIR Patient (only those it carries), validated as a registration is. An
    unusable optional element (a language that is no BCP 47 tag) is left out and noted in `dropped`."""
    fields = _person_names(resource)
    if resource.get("gender"):
        fields["gender"] = resource["gender"]
    if resource.get("birthDate"):
        # Valid FHIR (`1980`, `1980-05`), but our record holds a day: refused, never stored as 1 January.
        if not FULL_DATE.match(str(resource["birthDate"])):
            raise Unprocessable(PARTIAL_BIRTH_DATE, loc=("body", "birthDate"))
        fields["date_of_birth"] = resource["birthDate"]
    phones, emails = _telecom(resource, "phone"), _telecom(resource, "email")
    if phones:
        fields["phone_primary"] = phones[0]
        if len(phones) > 1:
            fields["phone_secondary"] = phones[1]
    if emails:
        fields["email_primary"] = emails[0]
    addresses = resource.get("address") or []
    if addresses:
        address = addresses[0]
        lines = address.get("line") or []
        fields.update(
            address_line1=lines[0] if lines else None,
            address_line2=lines[1] if len(lines) > 1 else None,
            city=address.get("city"),
            state=address.get("state"),
            postal_code=address.get("postalCode"),
            country=address.get("country"),
        )
    language = _languages(resource, dropped if dropped is not None else [])
    if language:
        fields["preferred_language"] = language
    # Validate and normalise (phone numbers to E.164, ...) as a registration does; keep only what was sent.
    checked = PatientCreate(**fields).model_dump(
        exclude_unset=True, exclude={"tenant_id", "mrn", "meta_data"}
    )
    return {k: v for k, v in checked.items() if k in fields}


def practitioner_fields(resource: dict[str, Any], identifiers: list[tuple[str, str]]) -> dict[str, Any]:
    """Our practitioner fields from a FHIR Practitioner."""
    fields = _person_names(resource)
    if resource.get("gender"):
        fields["gender"] = resource["gender"]
    if "active" in resource:
        fields["is_active"] = bool(resource["active"])
    license_number = next((v for s, v in identifiers if s == LICENSE_SYSTEM), None)
    if license_number:
        fields["license_number"] = license_number
    phones, emails = _telecom(resource, "phone"), _telecom(resource, "email")
    if phones:
        fields["phone_primary"] = phones[0]
    if emails:
        fields["email_primary"] = emails[0]
    qualifications = [
        (q.get("code") or {}).get("text") for q in resource.get("qualification") or [] if q.get("code")
    ]
    if qualifications and qualifications[0]:
        fields["qualification"] = qualifications[0]
    checked = PractitionerCreate(**fields).model_dump(exclude_unset=True, exclude={"tenant_id", "meta_data"})
    return {k: v for k, v in checked.items() if k in fields}


def appointment_details(resource: dict[str, Any]) -> dict[str, Any]:
    """Type, reason and comment of a FHIR Appointment, as our appointment's fields."""
    details: dict[str, Any] = {}
    kind = resource.get("appointmentType") or {}
    codings = kind.get("coding") or []
    code = (codings[0].get("code") if codings else None) or kind.get("text")
    if code:
        details["appointment_type"] = str(code)[:64]
    reasons = [r.get("text") for r in resource.get("reasonCode") or [] if r.get("text")]
    if reasons:
        details["reason_text"] = str(reasons[0])[:2000]
    if resource.get("comment"):
        details["notes"] = str(resource["comment"])[:4000]
    return details
