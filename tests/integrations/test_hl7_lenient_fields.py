"""An unusable optional field (a language given by name, a placeholder phone, a local sex code) is dropped,
or mapped through the feed's code maps, and the message applied: AA with an ERR of severity W naming the
field. Fields that identify the patient or the appointment still refuse the message (AE)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from core.audit import AuditRecord
from core.database import mark_system
from domain.hl7.models import Hl7Message
from domain.patients.models import Patient
from domain.scheduling.models import Appointment
from tests.audit.support import chain_waiting
from tests.integrations.ehr_messages import ack_code, adt, errors, patient_by_mrn, siu
from tests.integrations.hl7_messages import count, message, segments, send

CLIENTS = "/api/v1/prm/integration-clients"


async def feed_client(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    """The client id of the tenant's one integration client."""
    [found] = (await client.get(CLIENTS, headers=admin)).json()
    return str(found["client_id"])


async def test_an_epic_a04_with_spanish_a_placeholder_phone_and_a_local_sex_code_registers_the_patient(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    body = adt("A04", "E4001", language="SPANISH", phone="000", sex="X")

    first = await send(client, hl7_auth, body)
    again = await send(client, hl7_auth, body)

    assert ack_code(first) == "AA", first.text
    assert sorted(errors(first.text)) == [
        ("PID^1^13", "102", "W"),
        ("PID^1^15", "103", "W"),
        ("PID^1^8", "103", "W"),
    ]
    assert again.text == first.text  # a resend gets the same ACK, warnings and all
    patient = await patient_by_mrn(session_of, "E4001")
    assert patient is not None and (patient.first_name, patient.last_name) == ("Maria", "Garcia")
    assert (patient.preferred_language, patient.phone_primary, patient.gender) == (None, None, None)
    assert str(patient.date_of_birth) == "1975-04-12"
    assert "SPANISH" not in first.text and "000^PRN" not in first.text  # the ACK names fields, not values


async def test_the_feeds_code_maps_turn_local_codes_into_ours(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    headers_for: Any,
    tenant_id: uuid.UUID,
    session_of: Any,
    system_sessionmaker: Any,
) -> None:
    admin = headers_for(tenant_id, "admin")
    client_id = await feed_client(client, admin)
    configured = await client.patch(
        f"{CLIENTS}/{client_id}",
        json={
            "code_maps": {
                "language": {"spanish": "ES", "Portuguese (Brazil)": "pt_BR"},
                "sex": {"X": "other"},
                "appointment_type": {"FU": "follow-up"},
            }
        },
        headers=admin,
    )
    assert configured.status_code == 200, configured.text
    assert configured.json()["hl7_feed"]["code_maps"] == {
        "language": {"SPANISH": "es", "PORTUGUESE (BRAZIL)": "pt-BR"},
        "sex": {"X": "other"},
        "appointment_type": {"FU": "follow-up"},
    }

    registered = await send(
        client, hl7_auth, adt("A04", "E4101", language="SPANISH", sex="X", phone="2125550123")
    )
    booked = await send(
        client,
        hl7_auth,
        siu("S12", "E4101", "70001", "202701201100", kind="FU^Follow up", phone="2125550123", sex="X"),
    )

    assert ack_code(registered) == "AA" and errors(registered.text) == []
    assert ack_code(booked) == "AA" and errors(booked.text) == [], booked.text
    patient = await patient_by_mrn(session_of, "E4101")
    assert patient is not None
    assert (patient.preferred_language, patient.gender, patient.phone_primary) == (
        "es",
        "other",
        "+12125550123",
    )
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
    assert appointment.appointment_type == "follow-up"
    await chain_waiting(system_sessionmaker)  # the configuration's record, committed with it
    async with system_sessionmaker() as session:
        mark_system(session)
        actions = (
            await session.scalars(select(AuditRecord.action).where(AuditRecord.tenant_id == tenant_id))
        ).all()
    assert "integration_clients.configure" in actions


async def test_a_kind_given_replaces_its_map_and_an_empty_map_removes_it(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    client_id = await feed_client(client, admin)
    url = f"{CLIENTS}/{client_id}"
    await client.patch(
        url, json={"code_maps": {"language": {"SPANISH": "es"}, "sex": {"X": "other"}}}, headers=admin
    )

    replaced = await client.patch(url, json={"code_maps": {"language": {"ITALIAN": "it"}}}, headers=admin)
    removed = await client.patch(url, json={"code_maps": {"sex": {}}}, headers=admin)

    assert replaced.json()["hl7_feed"]["code_maps"] == {"language": {"ITALIAN": "it"}, "sex": {"X": "other"}}
    assert removed.json()["hl7_feed"]["code_maps"] == {"language": {"ITALIAN": "it"}}


async def test_a_code_map_to_something_that_is_not_ours_is_422(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], headers_for: Any, tenant_id: uuid.UUID
) -> None:
    admin = headers_for(tenant_id, "admin")
    url = f"{CLIENTS}/{await feed_client(client, admin)}"

    bad_language = await client.patch(
        url, json={"code_maps": {"language": {"SPANISH": "Spanish"}}}, headers=admin
    )
    bad_sex = await client.patch(url, json={"code_maps": {"sex": {"X": "nonbinary"}}}, headers=admin)
    bad_kind = await client.patch(url, json={"code_maps": {"race": {"W": "white"}}}, headers=admin)
    coordinator = await client.patch(url, json={"timezone": "UTC"}, headers=headers_for(tenant_id))

    assert (bad_language.status_code, bad_sex.status_code, bad_kind.status_code) == (422, 422, 422)
    assert "SPANISH" in str(bad_language.json()["detail"])
    assert coordinator.status_code == 403
    listed = (await client.get(CLIENTS, headers=admin)).json()
    assert listed[0]["hl7_feed"]["code_maps"] == {}


async def test_another_tenants_client_cannot_be_configured(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    headers_for: Any,
    tenant_id: uuid.UUID,
    make_tenant: Any,
) -> None:
    client_id = await feed_client(client, headers_for(tenant_id, "admin"))
    other = headers_for(await make_tenant("Other Clinic"), "admin")

    response = await client.patch(f"{CLIENTS}/{client_id}", json={"timezone": "UTC"}, headers=other)

    assert response.status_code == 404


async def test_required_fields_still_refuse_the_message_and_store_nothing(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    no_identifier = adt("A04", "", language="SPANISH")
    no_family_name = adt("A04", "E4301", family="")
    no_time = siu("S12", "E4302", "70002", "")

    refusals = [await send(client, hl7_auth, body) for body in (no_identifier, no_family_name, no_time)]

    assert [ack_code(r) for r in refusals] == ["AE", "AE", "AE"]
    assert [errors(r.text)[0][0] for r in refusals] == ["PID^1^3", "PID^1^5", "SCH^1^11"]
    assert all(severity == "E" for r in refusals for _, _, severity in errors(r.text)[:1])
    assert await count(session_of, Patient) == 0
    assert await count(session_of, Appointment) == 0


async def test_an_invalid_email_and_a_bad_postal_code_are_dropped_and_the_rest_kept(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    body = message(
        "MSH|^~\\&|CERNER|NORTHSIDE|PRM|PRM|20261201120000||ADT^A08|C-4401|P|2.5.1",
        "PID|1||E4401^^^NORTHSIDE^MR||Okafor^Chidi||19900202|M|||1 Elm St^^Albany^NY^"
        + "9" * 40
        + "^USA||^NET^Internet^not-an-address@~^PRN^PH^^1^518^5550142||ENG",
        "ZPI|1|x",
    )

    response = await send(client, hl7_auth, body)

    assert ack_code(response) == "AA", response.text
    assert {(location, severity) for location, _, severity in errors(response.text)} == {
        ("PID^1^11", "W"),
        ("PID^1^13", "W"),
    }
    async with session_of() as session:
        [patient] = (await session.scalars(select(Patient))).all()
        [record] = (await session.scalars(select(Hl7Message))).all()
    assert (patient.phone_primary, patient.email_primary, patient.preferred_language) == (
        "+15185550142",
        None,
        "en",
    )
    assert patient.postal_code is None and patient.city == "Albany"
    assert segments(record.ack)["ERR"][4] == "W"
