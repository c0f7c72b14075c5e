"""`POST /hl7/v2`: an EHR's ADT and SIU messages, sent as the EHR would (an integration client's token, ER7
bodies), against the real database; the ACK's MSA-1 says what happened and a refused message changes
nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from core.client_credentials import Scope
from core.database import bind_tenant
from core.events import DomainEvent
from core.workflow_commands import WorkflowCommand
from domain.fhir.identifiers import PATIENT_IDS
from domain.hl7.models import Hl7Message
from domain.patients.models import Patient, PatientIdentifier
from domain.scheduling.models import Appointment
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.hl7_messages import (
    MRN_AUTHORITY,
    adt,
    control_id,
    discharge_after_knee_replacement,
    message,
    msh,
    pid,
    siu,
)

HL7 = "/hl7/v2"
HL7_TYPE = {"Content-Type": "application/hl7-v2"}


@pytest.fixture
async def hl7_auth(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory
) -> dict[str, str]:
    """Headers with an HL7 token of this test's tenant."""
    return await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))


@pytest.fixture
def session_of(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """A session scoped to this test's tenant."""

    def factory() -> AsyncSession:
        session = system_sessionmaker()
        bind_tenant(session, tenant_id)
        return session

    return factory


def segments(ack: str) -> dict[str, list[str]]:
    """The ACK's segments by id, each split into fields (index = HL7 position for non-MSH segments)."""
    return {line.split("|")[0]: line.split("|") for line in ack.split("\r") if line}


async def send(
    client: httpx.AsyncClient, auth: dict[str, str], body: str, content_type: str = "application/hl7-v2"
) -> httpx.Response:
    """POST one message."""
    return await client.post(HL7, content=body.encode(), headers={**auth, "Content-Type": content_type})


async def patient_by_mrn(session_of, mrn: str) -> Patient | None:  # type: ignore[no-untyped-def]
    """The patient General Hospital's MRN names."""
    async with session_of() as session:
        patient_id = await PATIENT_IDS.find(session, MRN_AUTHORITY, mrn)
        return await session.get(Patient, patient_id) if patient_id else None


async def count(session_of, model: type) -> int:  # type: ignore[no-untyped-def]
    """Rows of `model` in the tenant."""
    async with session_of() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# ---- ADT ----------------------------------------------------------------------------------------------


async def test_a04_registers_the_patient_once_even_when_sent_twice(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    body = adt("A04", "MRN1001")

    first = await send(client, hl7_auth, body)
    second = await send(client, hl7_auth, body)

    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"].startswith("application/hl7-v2")
    ack = segments(first.text)
    assert ack["MSA"][1] == "AA"
    assert ack["MSA"][2] == segments(body)["MSH"][9]  # MSA-2 echoes MSH-10
    assert second.text == first.text  # the same ACK, word for word
    patient = await patient_by_mrn(session_of, "MRN1001")
    assert patient is not None and (patient.first_name, patient.last_name) == ("John", "Doe")
    assert str(patient.date_of_birth) == "1980-01-01" and patient.gender == "male"
    assert patient.phone_primary == "+14155550199"
    assert await count(session_of, Patient) == 1
    async with session_of() as session:
        events = (await session.scalars(select(DomainEvent))).all()
    assert [(e.type, e.source) for e in events] == [("patient.registered", "hl7")]
    async with session_of() as session:
        session.info["system"] = True
        audited = await session.scalars(
            select(AuditRecord.patient_id).where(
                AuditRecord.tenant_id == patient.tenant_id, AuditRecord.action == "hl7.receive"
            )
        )
        assert audited.all() == [patient.id]  # the write's record; the repeat wrote nothing


async def test_the_same_message_sent_twice_at_once_is_applied_once(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    body = adt("A04", "MRN1003")

    first, second = await asyncio.gather(send(client, hl7_auth, body), send(client, hl7_auth, body))

    assert segments(first.text)["MSA"][1] == segments(second.text)["MSA"][1] == "AA"
    assert await count(session_of, Patient) == 1
    assert await count(session_of, Hl7Message) == 1


async def test_a04_for_a_probable_duplicate_links_the_identifier_instead_of_registering_again(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], auth: dict[str, str], session_of
) -> None:
    body = {
        "first_name": "John",
        "last_name": "Doe",
        "date_of_birth": "1980-01-01",
        "phone_primary": "+14155550199",
    }
    existing = await client.post("/api/v1/prm/patients", json=body, headers=auth)
    assert existing.status_code == 201, existing.text

    response = await send(client, hl7_auth, adt("A04", "MRN1002"))

    assert segments(response.text)["MSA"][1] == "AA"
    patient = await patient_by_mrn(session_of, "MRN1002")
    assert patient is not None and str(patient.id) == existing.json()["id"]
    assert await count(session_of, Patient) == 1


async def test_a08_updates_the_patient(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    await send(client, hl7_auth, adt("A04", "MRN2001"))

    response = await send(client, hl7_auth, adt("A08", "MRN2001", family="Doe-Smith", phone="5550111"))

    assert segments(response.text)["MSA"][1] == "AA"
    patient = await patient_by_mrn(session_of, "MRN2001")
    assert patient is not None
    assert (patient.last_name, patient.phone_primary) == ("Doe-Smith", "+14155550111")
    assert await count(session_of, Patient) == 1


async def test_a40_merges_the_prior_patient_into_the_survivor(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    await send(client, hl7_auth, adt("A04", "MRN3001"))
    await send(
        client,
        hl7_auth,
        adt("A04", "MRN3002", family="Roe", given="Richard", birth="19700505", phone="5550122"),
    )
    survivor, prior = await patient_by_mrn(session_of, "MRN3001"), await patient_by_mrn(session_of, "MRN3002")
    assert survivor is not None and prior is not None and survivor.id != prior.id

    merge = message(
        msh("ADT^A40^ADT_A39", control_id()),
        "EVN|A40|20261201120000",
        pid("MRN3001"),
        f"MRG|MRN3002^^^{MRN_AUTHORITY}^MR",
    )
    response = await send(client, hl7_auth, merge)

    assert segments(response.text)["MSA"][1] == "AA", response.text
    async with session_of() as session:
        retired = await session.get(Patient, prior.id)
        assert retired is not None and retired.merged_into_id == survivor.id
    # The prior MRN now leads to the survivor: a later message about it updates the surviving record.
    again = await send(client, hl7_auth, adt("A08", "MRN3002", family="Doe", given="John"))
    assert segments(again.text)["MSA"][1] == "AA"
    assert await count(session_of, Patient) == 2  # nobody registered again


async def test_a03_emits_the_discharge_with_the_facts_a_trigger_matches(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    response = await send(client, hl7_auth, discharge_after_knee_replacement("MRN4001", "V4001"))

    assert segments(response.text)["MSA"][1] == "AA", response.text
    async with session_of() as session:
        [event] = (
            await session.scalars(select(DomainEvent).where(DomainEvent.type == "encounter.discharged"))
        ).all()
    assert (event.subject_type, event.subject_id, event.source) == ("encounter", "V4001", "hl7")
    assert event.facts["procedure_codes"] == ["27447"]
    assert "Total knee replacement" in event.facts["procedure_names"]
    assert event.facts["hospital_service"] == "SUR" and event.facts["encounter_class"] == "I"
    assert event.facts["location"] == "ORTHO^201^A"


# ---- malformed messages, tenancy, scope -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ("this is not hl7", "AR", "MSH"),
        (message("MSH|^~\\&|EPIC|GENHOSP|PRM|CLINIC|20261201120000||ADT^A04|"), "AR", "MSH-10"),
        (message(msh("ORU^R01", "C1"), "PID|1||X^^^H^MR||Doe^John"), "AR", "ADT and SIU"),
        (message(msh("ADT^A02", "C2"), "PID|1||X^^^H^MR||Doe^John"), "AR", "A01"),
        (message(msh("ADT^A04", "C3")), "AE", "PID segment"),
        (message(msh("ADT^A04", "C4"), "PID|1||MRN9^^^H^MR||Doe"), "AE", "PID-5"),
        (message(msh("ADT^A04", "C5"), "PID|1||MRN9^^^H^MR||Doe^John||1980-13-45"), "AE", "PID-7"),
        (message(msh("ADT^A04", "C6"), "PID|1||||Doe^John"), "AE", "PID-3"),
    ],
)
async def test_a_malformed_message_is_refused_with_a_reason_and_changes_nothing(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of, body: str, code: str, reason: str
) -> None:
    response = await send(client, hl7_auth, body)

    assert response.status_code == 200
    ack = segments(response.text)
    assert ack["MSA"][1] == code
    assert reason in ack["MSA"][3]
    assert "ERR" in ack
    assert "Doe" not in response.text and "John" not in response.text  # the reason never quotes the message
    assert await count(session_of, Patient) == 0
    assert await count(session_of, Hl7Message) == 0
    assert await count(session_of, DomainEvent) == 0


async def test_a_refused_message_leaves_no_half_done_work(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    # The patient would be registered, then the unknown appointment refuses the whole message.
    cancel = siu("S15", "MRN5001", "UNKNOWN-APPT", datetime.now(UTC) + timedelta(days=3))

    response = await send(client, hl7_auth, cancel)

    assert segments(response.text)["MSA"][1] == "AE"
    assert "SCH-1" in segments(response.text)["MSA"][3]
    assert await count(session_of, Patient) == 0


async def test_the_same_control_id_from_another_tenant_is_its_own_message(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    make_tenant,
    make_client: ClientFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other_tenant = await make_tenant(name="Other Clinic")
    other_auth = await bearer_for(client, await make_client(other_tenant, (Scope.HL7,)))
    body = adt("A04", "MRN6001", control="SHARED-CONTROL-ID")

    mine = await send(client, hl7_auth, body)
    theirs = await send(client, other_auth, body)

    assert segments(mine.text)["MSA"][1] == segments(theirs.text)["MSA"][1] == "AA"
    async with system_sessionmaker() as session:
        session.info["system"] = True
        owners = await session.scalars(
            select(PatientIdentifier.tenant_id).where(PatientIdentifier.value == "MRN6001")
        )
        assert len(set(owners.all())) == 2  # one patient in each tenant, each its own


async def test_without_a_token_is_401_and_without_the_hl7_scope_is_403(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    make_client: ClientFactory,
    auth: dict[str, str],
    session_of,
) -> None:
    fhir_only = await bearer_for(client, await make_client(tenant_id, (Scope.FHIR,)))
    body = adt("A04", "MRN7001")

    assert (await send(client, {}, body)).status_code == 401
    assert (await send(client, auth, body)).status_code == 401  # a coordinator's token is not a system's
    forbidden = await send(client, fhir_only, body)
    assert forbidden.status_code == 403
    assert "hl7" in forbidden.json()["detail"]
    assert await count(session_of, Patient) == 0


async def test_a_body_of_another_media_type_is_415(
    client: httpx.AsyncClient, hl7_auth: dict[str, str]
) -> None:
    response = await send(client, hl7_auth, adt("A04", "MRN8001"), content_type="application/json")

    assert response.status_code == 415
    assert "application/hl7-v2" in response.json()["detail"]


async def test_er7_and_text_plain_bodies_with_lf_separators_are_accepted(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    er7 = await send(client, hl7_auth, adt("A04", "MRN8002"), content_type="x-application/hl7-v2+er7")
    plain = await send(client, hl7_auth, adt("A04", "MRN8003").replace("\r", "\n"), content_type="text/plain")

    assert segments(er7.text)["MSA"][1] == segments(plain.text)["MSA"][1] == "AA"
    assert await patient_by_mrn(session_of, "MRN8003") is not None


# ---- SIU ----------------------------------------------------------------------------------------------


async def test_s12_books_and_s15_cancels_the_appointment_and_its_reminders(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], auth: dict[str, str], session_of
) -> None:
    start = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    booking = siu("S12", "MRN9001", "APPT-1", start)

    booked = await send(client, hl7_auth, booking)
    repeated = await send(client, hl7_auth, booking)

    assert segments(booked.text)["MSA"][1] == "AA", booked.text
    assert repeated.text == booked.text
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
    assert appointment.start_time == start and appointment.end_time == start + timedelta(minutes=30)
    assert (appointment.status, appointment.source_channel) == ("booked", "hl7")
    assert appointment.appointment_type == "FOLLOWUP"

    cancelled = await send(client, hl7_auth, siu("S15", "MRN9001", "APPT-1", start))

    assert segments(cancelled.text)["MSA"][1] == "AA", cancelled.text
    detail = await client.get(f"/api/v1/prm/appointments/{appointment.id}", headers=auth)
    assert detail.json()["status"] == "cancelled"
    async with session_of() as session:
        signals = (
            await session.scalars(
                select(WorkflowCommand.signal).where(WorkflowCommand.workflow_id == appointment.workflow_id)
            )
        ).all()
    assert "cancel" in signals  # the appointment's workflow is told to stop its reminders


async def test_s13_reschedules_and_s26_records_a_no_show(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of
) -> None:
    start = (datetime.now(UTC) + timedelta(days=6)).replace(microsecond=0)
    later = start + timedelta(days=1, hours=2)
    await send(client, hl7_auth, siu("S12", "MRN9101", "APPT-2", start))

    moved = await send(client, hl7_auth, siu("S13", "MRN9101", "APPT-2", later, minutes=45))
    missed = await send(client, hl7_auth, siu("S26", "MRN9101", "APPT-2", later, minutes=45))

    assert segments(moved.text)["MSA"][1] == segments(missed.text)["MSA"][1] == "AA"
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
        types = (await session.scalars(select(DomainEvent.type).order_by(DomainEvent.id))).all()
    assert (appointment.start_time, appointment.end_time) == (later, later + timedelta(minutes=45))
    assert appointment.status == "no_show"
    assert types[-2:] == ["appointment.rescheduled", "appointment.no_show"]
