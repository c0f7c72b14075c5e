"""The entries of a transaction Bundle, checked for shape before anything is imported: which resource,
which request (POST or PUT, its condition), its identifiers. Refusals are 4xx naming the entry, never a
submitted value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from core.errors import BadRequest, DomainError, Unprocessable
from domain.fhir.identifiers import MAX_SYSTEM_LENGTH, MAX_VALUE_LENGTH
from domain.fhir.render import model

IMPORT_ORDER = ("Practitioner", "Patient", "Appointment")  # what an entry names first comes first
MAX_ENTRIES = 1000


@dataclass
class Entry:
    """One entry of the bundle: its place, fullUrl, request and resource."""

    index: int
    full_url: str | None
    method: str
    url: str
    if_none_exist: str | None
    resource: dict[str, Any]

    @property
    def type(self) -> str:
        """The resource's type (`Patient`, ...)."""
        return str(self.resource["resourceType"])


def refuse(entry: Entry, error: DomainError) -> DomainError:
    """The same error, its detail naming the entry."""
    return type(error)(f"entry[{entry.index}] ({entry.type}): {error.detail}", extra=error.extra)


def field_errors(exc: ValidationError) -> str:
    """Which fields were wrong and why, never their values (PHI)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'resource'}: {err['msg']}" for err in exc.errors()[:5]
    )


def parse_bundle(body: Any) -> list[Entry]:
    """The entries of a transaction Bundle, checked for shape; BadRequest says what is wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("The body must be a FHIR Bundle (JSON).")
    if body.get("type") != "transaction":
        raise BadRequest("Only Bundles of type `transaction` are accepted here.")
    try:
        model(body)
    except ValidationError as exc:
        raise BadRequest(f"The Bundle is not valid FHIR: {field_errors(exc)}") from exc
    raw_entries = body.get("entry") or []
    if len(raw_entries) > MAX_ENTRIES:
        raise BadRequest(f"A Bundle may carry at most {MAX_ENTRIES} entries.")
    entries = []
    full_urls: set[str] = set()
    for index, raw in enumerate(raw_entries):
        resource, request = raw.get("resource"), raw.get("request") or {}
        if not isinstance(resource, dict) or resource.get("resourceType") not in IMPORT_ORDER:
            raise Unprocessable(
                f"entry[{index}]: only Patient, Practitioner and Appointment resources can be imported."
            )
        method = str(request.get("method", "")).upper()
        if method not in ("POST", "PUT"):
            raise Unprocessable(f"entry[{index}]: request.method must be POST or PUT.")
        full_url = raw.get("fullUrl")
        if full_url:
            if full_url in full_urls:
                raise BadRequest(f"entry[{index}]: fullUrl appears twice in the Bundle.")
            full_urls.add(full_url)
        entries.append(
            Entry(index, full_url, method, str(request.get("url", "")), request.get("ifNoneExist"), resource)
        )
    return entries


def checked_identifier(system: str, value: str) -> tuple[str, str]:
    if len(system) > MAX_SYSTEM_LENGTH or len(value) > MAX_VALUE_LENGTH:
        raise Unprocessable(
            f"An identifier's system and value are at most {MAX_VALUE_LENGTH} characters each."
        )
    return system, value


def identifier_query(query: str) -> tuple[str, str]:
    """`identifier=system|value` (a conditional create or update, or a conditional reference)."""
    name, _, token = unquote(query).partition("=")
    system, bar, value = token.partition("|")
    if name != "identifier" or not bar or not system or not value or "&" in token:
        raise Unprocessable("Conditions must be `identifier=system|value`.")
    return checked_identifier(system, value)


def identifiers_of(resource: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for identifier in resource.get("identifier") or []:
        system, value = identifier.get("system"), identifier.get("value")
        if system and value:
            found.append(checked_identifier(str(system), str(value)))
    return found
