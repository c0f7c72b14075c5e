"""A partial birth date (`1980`, `1980-05`: valid FHIR, a year or month in HL7 v2) is refused, never stored as
1 January: a patient's record holds the day of birth, which identifies the patient and finds duplicates.
The refusal names the field (and the Bundle entry) and changes nothing, whatever else the message carried."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.patients.models import Patient
from tests.integrations.fhir_support import entry, patient, post_bundle, practitioner, snapshot
from tests.integrations.hl7_messages import adt, count, segments, send


def bundle_with_birth_date(birth: str) -> dict[str, object]:
    """A practitioner and a patient with a full birth date, then a patient born on `birth`."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(practitioner("S-70"), "urn:uuid:dr"),
            entry(patient("E-70"), "urn:uuid:p1"),
            entry(patient("E-71", given="Ana", family="Lopez", birth=birth), "urn:uuid:p2"),
        ],
    }


@pytest.mark.parametrize("birth", ["1980", "1980-05"])
async def test_a_fhir_patient_with_a_partial_birth_date_refuses_the_whole_bundle_naming_the_entry(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    birth: str,
) -> None:
    before = await snapshot(system_sessionmaker, tenant_id)

    response = await post_bundle(client, fhir_auth, bundle_with_birth_date(birth))

    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert issue["diagnostics"].startswith("entry[2] (Patient): birthDate must be a full date (YYYY-MM-DD)")
    assert "Lopez" not in response.text and "Ana" not in response.text
    assert await snapshot(system_sessionmaker, tenant_id) == before  # the practitioner and E-70 too


async def test_a_fhir_patient_with_a_full_birth_date_is_stored_as_sent(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    session_of: Callable[[], AsyncSession],
) -> None:
    response = await post_bundle(client, fhir_auth, bundle_with_birth_date("1980-05-17"))

    assert response.status_code == 200, response.text
    async with session_of() as session:
        born = await session.scalar(select(Patient.date_of_birth).where(Patient.last_name == "Lopez"))
    assert born is not None and born.isoformat() == "1980-05-17"


@pytest.mark.parametrize("birth", ["1980", "198005"])
async def test_an_hl7_pid_7_without_the_day_is_an_ae_at_pid_7_and_changes_nothing(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Callable[[], AsyncSession], birth: str
) -> None:
    response = await send(client, hl7_auth, adt("A04", "MRN7701", birth=birth))

    ack = segments(response.text)
    assert ack["MSA"][1] == "AE"
    assert "PID-7" in ack["MSA"][3] and "day" in ack["MSA"][3]
    assert ack["ERR"][2] == "PID^1^7"
    assert await count(session_of, Patient) == 0
