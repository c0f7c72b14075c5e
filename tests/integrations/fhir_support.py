"""Helpers for the FHIR tests: requests whose answers are checked against the fhir.resources (R4B) models,
patients registered through the coordinator API, and the EHR's resources and transaction bundles an
import is made of (with a snapshot of every row an import may touch)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.patients.models import Patient, PatientIdentifier
from domain.practitioners.models import Practitioner, PractitionerIdentifier
from domain.scheduling.models import Appointment, AppointmentIdentifier

API = "/api/v1/prm"


FHIR = "/fhir/R4"


def valid(body: dict[str, Any]) -> dict[str, Any]:
    """`body` after checking it validates with its fhir.resources (R4B) model, entries included."""
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    for entry in body.get("entry", []):
        for resource in (entry.get("resource"), entry.get("response", {}).get("outcome")):
            if resource is not None:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return body


FHIR_JSON = {"Content-Type": "application/fhir+json"}


async def fhir_request(
    client: httpx.AsyncClient, auth: dict[str, str], method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """A FHIR request (FHIR JSON sent) whose answer must be FHIR JSON that validates, whatever its status."""
    headers = {**auth, **FHIR_JSON, **kwargs.pop("headers", {})}
    response = await client.request(method, f"{FHIR}/{path}".rstrip("/"), headers=headers, **kwargs)
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    valid(response.json())
    return response


async def fhir_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> httpx.Response:
    """GET a FHIR path; the answer is FHIR JSON whatever its status."""
    response = await client.get(f"{FHIR}/{path}", params=params, headers=headers)
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    valid(response.json())
    return response


def ids(bundle: dict[str, Any]) -> list[str]:
    """The ids of a searchset's entries."""
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def register(client: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A patient registered through the coordinator API."""
    body = {
        "first_name": "John",
        "last_name": "Smith",
        "date_of_birth": "1980-04-12",
        "gender": "male",
        **fields,
    }
    response = await client.post(f"{API}/patients", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


EHR_MRN = "urn:oid:2.16.840.1.113883.19.5"


EHR_STAFF = "urn:oid:2.16.840.1.113883.19.7"


EHR_APPT = "urn:oid:2.16.840.1.113883.19.9"


START = (datetime.now(UTC) + timedelta(days=5)).replace(hour=9, minute=0, second=0, microsecond=0)


def entry(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> dict[str, Any]:
    """A bundle entry: POST by default."""
    item: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        item["fullUrl"] = full_url
    return item


def patient(
    mrn: str, given: str = "Maria", family: str = "Garcia", birth: str = "1975-06-01", **extra: Any
) -> dict[str, Any]:
    """An EHR's Patient."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": EHR_MRN, "value": mrn}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        **extra,
    }


def practitioner(staff_id: str) -> dict[str, Any]:
    """An EHR's Practitioner."""
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": EHR_STAFF, "value": staff_id}],
        "name": [{"family": "House", "given": ["Greg"]}],
    }


def appointment(
    appt_id: str, patient_ref: str, practitioner_ref: str, start: datetime, status: str = "booked"
) -> dict[str, Any]:
    """An EHR's Appointment of 30 minutes."""
    return {
        "resourceType": "Appointment",
        "identifier": [{"system": EHR_APPT, "value": appt_id}],
        "status": status,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "appointmentType": {"coding": [{"code": "follow_up"}]},
        "participant": [
            {"actor": {"reference": patient_ref}, "status": "accepted"},
            {"actor": {"reference": practitioner_ref}, "status": "accepted"},
        ],
    }


async def post_bundle(client: httpx.AsyncClient, headers: dict[str, str], bundle: Any) -> httpx.Response:
    """POST a bundle as FHIR JSON; the answer is always FHIR JSON."""
    response = await client.post(
        FHIR, json=bundle, headers={**headers, "Content-Type": "application/fhir+json"}
    )
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    valid(response.json())
    return response


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID) -> dict[str, Any]:
    """Every row an import may touch in the tenant, with its last change."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        state: dict[str, Any] = {}
        for name, table in (
            ("patients", Patient),
            ("practitioners", Practitioner),
            ("appointments", Appointment),
            ("patient_ids", PatientIdentifier),
            ("practitioner_ids", PractitionerIdentifier),
            ("appointment_ids", AppointmentIdentifier),
        ):
            rows = (await session.execute(select(table.id, table.updated_at).order_by(table.id))).all()
            state[name] = [tuple(r) for r in rows]
        return state
