"""Domain events of records that go away: an appointment deleted (a cancellation nobody keeps) and a patient
merged into another (their events and trigger starts follow them), against the real database and the real
Temporal dev server, with the dispatcher driven one round at a time on the test's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import select

from core.events import DomainEvent
from domain.journeys.dispatch import TriggerDispatcher
from tests.journeys.conftest import Clinic
from tests.journeys.test_journey_triggers import API, book, event_types, instances_of

MakeJourney = Callable[..., Awaitable[dict[str, Any]]]


async def events_of(clinic: Clinic, type: str) -> list[DomainEvent]:
    """The tenant's events of `type`, oldest first."""
    async with await clinic.session() as session:
        stmt = select(DomainEvent).where(DomainEvent.type == type).order_by(DomainEvent.id)
        return list((await session.scalars(stmt)).all())


# ---- a deleted appointment ---------------------------------------------------------------------------------


async def test_deleting_a_booked_appointment_emits_its_cancellation(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    visit = await book(client, auth, clinic, 3, appointment_type="consultation")

    assert (await client.delete(f"{API}/appointments/{visit}", headers=auth)).status_code == 204

    assert await event_types(clinic) == ["appointment.booked", "appointment.cancelled"]
    [cancelled] = await events_of(clinic, "appointment.cancelled")
    assert (cancelled.subject_type, cancelled.subject_id) == ("appointment", visit)
    assert cancelled.patient_id == clinic.patient_id
    assert cancelled.facts["status"] == "cancelled" and cancelled.facts["deleted"] is True
    assert cancelled.facts["appointment_type"] == "consultation"


async def test_deleting_an_appointment_that_is_over_emits_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    visit, cancelled = await book(client, auth, clinic, 3), await book(client, auth, clinic, 4)
    for status in ("checked_in", "completed"):
        resp = await client.patch(f"{API}/appointments/{visit}", json={"status": status}, headers=auth)
        assert resp.status_code == 200, resp.text
    assert (await client.post(f"{API}/appointments/{cancelled}/cancel", headers=auth)).status_code == 200
    before = await event_types(clinic)

    for appointment_id in (visit, cancelled):
        assert (await client.delete(f"{API}/appointments/{appointment_id}", headers=auth)).status_code == 204

    assert await event_types(clinic) == before  # a visit's or a cancellation's record removed: no new fact


async def test_a_cancellation_journey_starts_for_a_deleted_appointment_without_linking_it(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
) -> None:
    rebook = await make_journey(
        name="Rebook after a cancellation",
        trigger_conditions={
            "event": "appointment.cancelled",
            "conditions": {"appointment_types": ["consultation"]},
        },
    )
    deleted = await book(client, auth, clinic, 3, appointment_type="consultation")
    cancelled = await book(client, auth, clinic, 4, appointment_type="consultation")
    assert (await client.delete(f"{API}/appointments/{deleted}", headers=auth)).status_code == 204
    assert (await client.post(f"{API}/appointments/{cancelled}/cancel", headers=auth)).status_code == 200

    await dispatcher.round()

    instances = await instances_of(clinic, rebook["id"], clinic.patient_id)
    by_record = {i.context["trigger"]["record"]: i for i in instances}
    assert set(by_record) == {f"appointment:{deleted}", f"appointment:{cancelled}"}
    assert by_record[f"appointment:{deleted}"].appointment_id is None  # the row is gone
    assert by_record[f"appointment:{cancelled}"].appointment_id == uuid.UUID(cancelled)
