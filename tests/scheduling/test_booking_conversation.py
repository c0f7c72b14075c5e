"""Conversational booking: find-slots offers held options, select-slot books the reply, offers expire."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from api.deps import workflow_gateway
from core.database import bind_tenant
from core.gateway import bind_gateway
from domain.communications.models import Communication
from domain.scheduling.models import BookingConversation, SlotHold
from tests.scheduling.booking_support import slots_for
from tests.scheduling.conftest import API

BASE = f"{API}/appointments"


async def sent_templates(sessionmaker, tenant_id, patient_id) -> list[str]:
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.scalars(
            select(Communication.template_name)
            .where(Communication.patient_id == patient_id)
            .order_by(Communication.created_at)
        )
        return list(rows)


async def test_find_slots_offers_held_options_and_a_reply_books_with_confirmation(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    make_patient,
    make_practitioner,
    make_slot,
    system_sessionmaker,
) -> None:
    patient = await make_patient()
    _, slots = await slots_for(make_practitioner, make_slot, 4)
    resp = await client.post(
        f"{BASE}/find-slots", json={"phone": "(415) 555-0100", "speciality": "dermatology"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    found = resp.json()
    assert [o["time_slot_id"] for o in found["options"]] == [s["id"] for s in slots[:3]]
    assert (found["status"], found["message_sent"], found["patient_id"]) == ("active", True, str(patient.id))

    # Another patient asking meanwhile is not offered the held slots.
    other = await make_patient(phone_primary="+14155550111")
    resp = await client.post(
        f"{BASE}/find-slots", json={"patient_id": str(other.id), "speciality": "Dermatology"}, headers=auth
    )
    assert [o["time_slot_id"] for o in resp.json()["options"]] == [slots[3]["id"]]

    reply = await client.post(
        f"{BASE}/select-slot",
        json={"conversation_id": found["conversation_id"], "reply": "the second one"},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["outcome"], body["status"]) == ("booked", "booked")
    assert body["appointment"]["time_slot_id"] == slots[1]["id"]
    assert body["appointment"]["source_channel"] == "whatsapp"
    assert await sent_templates(system_sessionmaker, tenant_id, patient.id) == [
        "booking_options",
        "appointment_booked",
    ]
    again = await client.post(
        f"{BASE}/select-slot", json={"conversation_id": found["conversation_id"], "reply": "1"}, headers=auth
    )
    assert again.status_code == 409


async def test_a_reply_that_is_not_understood_keeps_the_offer(
    client: httpx.AsyncClient, auth: dict, make_patient, make_practitioner, make_slot
) -> None:
    patient = await make_patient()
    await slots_for(make_practitioner, make_slot, 2)
    await client.post(f"{BASE}/find-slots", json={"patient_id": str(patient.id)}, headers=auth)
    resp = await client.post(
        f"{BASE}/select-slot", json={"patient_id": str(patient.id), "reply": "maybe next week?"}, headers=auth
    )
    assert resp.status_code == 200
    assert (resp.json()["outcome"], resp.json()["status"], len(resp.json()["options"])) == (
        "not_understood",
        "active",
        2,
    )
    booked = await client.post(
        f"{BASE}/select-slot", json={"patient_id": str(patient.id), "reply": "9:00"}, headers=auth
    )
    assert booked.json()["outcome"] == "booked"


async def test_when_someone_else_takes_the_chosen_slot_the_patient_gets_the_next_options(
    client: httpx.AsyncClient, auth: dict, make_patient, make_practitioner, make_slot, book
) -> None:
    patient, rival = await make_patient(), await make_patient(phone_primary="+14155550122")
    _, slots = await slots_for(make_practitioner, make_slot, 4)
    found = (
        await client.post(
            f"{BASE}/find-slots", json={"patient_id": str(patient.id), "max_options": 2}, headers=auth
        )
    ).json()
    assert [o["time_slot_id"] for o in found["options"]] == [slots[0]["id"], slots[1]["id"]]
    # The rival books option 1 (by phone with the front desk, through the same conflict-safe path).
    assert (await book(patient_id=str(rival.id), time_slot_id=slots[0]["id"])).status_code == 201
    resp = await client.post(
        f"{BASE}/select-slot", json={"conversation_id": found["conversation_id"], "reply": "1"}, headers=auth
    )
    body = resp.json()
    assert (body["outcome"], body["status"]) == ("slot_taken", "active")
    assert [o["time_slot_id"] for o in body["options"]] == [slots[1]["id"], slots[2]["id"]]
    chosen = await client.post(
        f"{BASE}/select-slot", json={"conversation_id": found["conversation_id"], "reply": "2"}, headers=auth
    )
    assert chosen.json()["appointment"]["time_slot_id"] == slots[2]["id"]


async def test_find_and_select_validation_and_not_found(
    client: httpx.AsyncClient, auth: dict, make_tenant, make_patient, headers_for
) -> None:
    assert (await client.post(f"{BASE}/find-slots", json={}, headers=auth)).status_code == 422
    assert (
        await client.post(
            f"{BASE}/find-slots", json={"patient_id": str(uuid.uuid4()), "max_options": 10}, headers=auth
        )
    ).status_code == 422
    assert (
        await client.post(f"{BASE}/find-slots", json={"patient_id": str(uuid.uuid4())}, headers=auth)
    ).status_code == 404
    other = await make_tenant()
    theirs = await make_patient(tenant=other)
    assert (
        await client.post(f"{BASE}/find-slots", json={"patient_id": str(theirs.id)}, headers=auth)
    ).status_code == 404
    assert (await client.post(f"{BASE}/select-slot", json={"reply": "1"}, headers=auth)).status_code == 422
    resp = await client.post(
        f"{BASE}/select-slot", json={"conversation_id": str(uuid.uuid4()), "reply": "1"}, headers=auth
    )
    assert resp.status_code == 404
    mine = await make_patient()
    found = (await client.post(f"{BASE}/find-slots", json={"patient_id": str(mine.id)}, headers=auth)).json()
    assert found["status"] == "closed"  # nothing to offer
    foreign = await client.post(
        f"{BASE}/select-slot",
        json={"conversation_id": found["conversation_id"], "reply": "1"},
        headers=headers_for(other),
    )
    assert foreign.status_code == 404


async def test_an_unanswered_offer_expires_by_itself_and_releases_its_holds(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
) -> None:
    patient = await make_patient()
    await slots_for(make_practitioner, make_slot, 2)
    found = (
        await client.post(
            f"{BASE}/find-slots", json={"patient_id": str(patient.id), "hold_minutes": 5}, headers=auth
        )
    ).json()
    handle = temporal_env.client.get_workflow_handle(f"booking-conversation-{found['conversation_id']}")
    await temporal_env.sleep(timedelta(minutes=6))  # past the 5-minute hold
    assert await asyncio.wait_for(handle.result(), timeout=15) == "expired"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        conversation = await session.scalar(
            select(BookingConversation).where(BookingConversation.id == uuid.UUID(found["conversation_id"]))
        )
        live = await session.scalars(
            select(SlotHold).where(
                SlotHold.conversation_id == conversation.id, SlotHold.released_at.is_(None)
            )
        )
        assert (conversation.status, list(live)) == ("expired", [])
    late = await client.post(
        f"{BASE}/select-slot", json={"conversation_id": found["conversation_id"], "reply": "1"}, headers=auth
    )
    assert late.status_code == 409


async def test_an_inbound_whatsapp_reply_routed_to_the_workflow_books_the_slot(
    client: httpx.AsyncClient,
    auth: dict,
    app,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
) -> None:
    from core.database import run_after_commit_jobs
    from domain.scheduling import replies

    patient = await make_patient()
    _, slots = await slots_for(make_practitioner, make_slot, 2)
    found = (
        await client.post(f"{BASE}/find-slots", json={"patient_id": str(patient.id)}, headers=auth)
    ).json()
    handle = temporal_env.client.get_workflow_handle(f"booking-conversation-{found['conversation_id']}")

    class _Request:
        pass

    request = _Request()
    request.app = app  # type: ignore[attr-defined]
    async with system_sessionmaker() as session:  # what the communications webhook does with a reply
        bind_tenant(session, tenant_id)
        bind_gateway(session, workflow_gateway(request))  # as the webhook's request binds it
        inbound = Communication(
            patient_id=patient.id, direction="inbound", channel="whatsapp", message="2", status="received"
        )
        session.add(inbound)
        await session.flush()
        routed = await replies.route_inbound_reply(
            session,
            patient_id=patient.id,
            communication_id=inbound.id,  # type: ignore[arg-type]
        )
        await session.commit()
        await run_after_commit_jobs(session)
    assert str(routed) == found["conversation_id"]
    assert await asyncio.wait_for(handle.result(), timeout=15) == "booked"
    listed = (await client.get(BASE, params={"patient_id": str(patient.id)}, headers=auth)).json()
    assert [a["time_slot_id"] for a in listed["items"]] == [slots[1]["id"]]
    assert "appointment_booked" in await sent_templates(system_sessionmaker, tenant_id, patient.id)
