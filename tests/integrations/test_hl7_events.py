"""The events real feeds send beyond the ones that change records: S17 deletes as S15 cancels; message
types this service does not use are refused (AR) unless the client asks for them to be ignored (AA, noted);
a control id is unique per sending application and facility, so two feeds whose ids collide do not refuse
each other."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from domain.hl7.models import Hl7Message
from domain.patients.models import Patient
from domain.scheduling.models import Appointment
from tests.integrations.ehr_messages import CERNER, EPIC, ack_code, adt, errors, patient_by_mrn, pv1, siu
from tests.integrations.hl7_messages import count, segments, send

CLIENTS = "/api/v1/prm/integration-clients"


async def ignore_unsupported(client: httpx.AsyncClient, admin: dict[str, str], value: bool) -> None:
    """Set the tenant's one client's `ignore_unsupported_messages`."""
    [found] = (await client.get(CLIENTS, headers=admin)).json()
    response = await client.patch(
        f"{CLIENTS}/{found['client_id']}", json={"ignore_unsupported_messages": value}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["hl7_feed"]["ignore_unsupported_messages"] is value


async def test_message_types_not_used_here_are_ar_unless_the_client_asks_to_ignore_them(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    headers_for: Any,
    tenant_id: uuid.UUID,
    session_of: Any,
) -> None:
    transfer = adt("A02", "E5001", pv1("V-5001"))
    refused = await send(client, hl7_auth, transfer)
    assert ack_code(refused) == "AR"
    assert errors(refused.text) == [("MSH^1^9", "201", "E")]

    await ignore_unsupported(client, headers_for(tenant_id, "admin"), True)
    ignored = [
        await send(client, hl7_auth, adt(trigger, f"E50{n}", pv1(f"V-50{n}")))
        for n, trigger in enumerate(("A02", "A05", "A28", "A31", "A34", "A47"))
    ]
    other_type = await send(client, hl7_auth, adt("A01", "E5099").replace("ADT^A01", "ORU^R01"))

    assert [ack_code(r) for r in ignored] == ["AA"] * 6
    assert all(errors(r.text) == [("MSH^1^9", "201", "W")] for r in ignored)
    assert "accepted and ignored" in ignored[0].text
    assert ack_code(other_type) == "AA"
    assert await count(session_of, Patient) == 0  # ignored: nothing applied
    # The first A02 keeps its AR when resent (original mode: a refused message is resent under a new id).
    assert (await send(client, hl7_auth, transfer)).text == refused.text


async def test_s17_deletes_the_appointment_as_s15_cancels_it(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    assert ack_code(await send(client, hl7_auth, siu("S12", "E5101", "80001", "202701181400"))) == "AA"

    deleted = await send(client, hl7_auth, siu("S17", "E5101", "80001", "202701181400"))
    deleted_again = await send(client, hl7_auth, siu("S17", "E5101", "80001", "202701181400"))

    assert ack_code(deleted) == ack_code(deleted_again) == "AA"
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
    assert appointment.status == "cancelled"


async def test_two_feeds_whose_control_ids_collide_are_each_applied(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    from_epic = adt("A04", "E5201", control="100234", sender=EPIC)
    from_cerner = adt(
        "A04", "C7701", control="100234", sender=CERNER, family="Nguyen", given="An", authority="NORTHSIDE"
    )

    epic_ack = await send(client, hl7_auth, from_epic)
    cerner_ack = await send(client, hl7_auth, from_cerner)
    epic_again = await send(client, hl7_auth, from_epic)

    assert ack_code(epic_ack) == ack_code(cerner_ack) == "AA", cerner_ack.text
    assert segments(cerner_ack.text)["MSH"][4] == "CERNER"  # MSH-5 of the ACK: the sender, turned around
    assert epic_again.text == epic_ack.text
    assert await patient_by_mrn(session_of, "E5201") is not None
    assert await patient_by_mrn(session_of, "C7701", "NORTHSIDE") is not None
    async with session_of() as session:
        rows = (await session.execute(select(Hl7Message.sending_application, Hl7Message.control_id))).all()
    assert sorted(rows) == [("CERNER", "100234"), ("EPIC", "100234")]


async def test_one_feed_reusing_a_control_id_for_another_message_is_still_refused(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    assert ack_code(await send(client, hl7_auth, adt("A04", "E5301", control="77"))) == "AA"

    reused = await send(client, hl7_auth, adt("A04", "E5302", control="77", family="Other"))

    assert ack_code(reused) == "AR"
    assert errors(reused.text)[0][1] == "205"
    assert await patient_by_mrn(session_of, "E5302") is None


async def test_a_cancel_for_an_admission_never_received_is_accepted_with_a_warning(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any
) -> None:
    cancel = await send(client, hl7_auth, adt("A11", "E5401", pv1("V-5401")))
    no_visit = await send(client, hl7_auth, adt("A13", "E5401", "PV1|1|I"))

    assert ack_code(cancel) == "AA"
    assert errors(cancel.text) == [("PV1^1^19", "204", "W")]
    assert ack_code(no_visit) == "AE"
    assert errors(no_visit.text)[0][0] == "PV1^1^19"
    assert await count(session_of, Patient) == 0  # a cancel registers no one
