"""Domain events of records that go away: an appointment deleted (a cancellation nobody keeps) and a patient
merged into another (their events and trigger starts follow them), against the real database and the real
Temporal dev server, with the dispatcher driven one round at a time on the test's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from core.events import DomainEvent, EventType, emit
from domain.journeys.models import JourneyTriggerStart
from domain.journeys.trigger_dispatch import TriggerDispatcher
from tests.journeys.api_support import API, book, event_types, instances_of, register
from tests.journeys.conftest import Clinic

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


# ---- a merged patient --------------------------------------------------------------------------------------


async def merge(client: httpx.AsyncClient, auth: dict[str, str], primary: Any, duplicate: Any) -> None:
    """Merge `duplicate` into `primary` through the API."""
    body = {"primary_patient_id": str(primary), "duplicate_patient_id": str(duplicate)}
    resp = await client.post(f"{API}/patients/merge", json=body, headers=auth)
    assert resp.status_code == 200, resp.text


async def starts_of(clinic: Clinic, journey_id: str) -> list[JourneyTriggerStart]:
    """The journey's trigger starts, in the order they were recorded."""
    async with await clinic.session() as session:
        stmt = (
            select(JourneyTriggerStart)
            .where(JourneyTriggerStart.journey_id == uuid.UUID(journey_id))
            .order_by(JourneyTriggerStart.occurred_at)
        )
        return list((await session.scalars(stmt)).all())


async def a_day_passes(clinic: Clinic) -> None:
    """Every pending start of the tenant becomes due."""
    async with await clinic.session() as session:
        await session.execute(
            update(JourneyTriggerStart).values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


async def test_a_merge_moves_the_duplicates_events_to_the_survivor(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    duplicate = await register(client, auth)
    await client.patch(f"{API}/patients/{duplicate}", json={"city": "Porto"}, headers=auth)

    await merge(client, auth, clinic.patient_id, duplicate)

    async with await clinic.session() as session:
        rows = (await session.execute(select(DomainEvent.type, DomainEvent.patient_id))).all()
    assert sorted(rows) == sorted(
        [
            ("patient.registered", clinic.patient_id),
            ("patient.updated", clinic.patient_id),
            ("patient.merged", clinic.patient_id),
        ]
    )
    [merged] = await events_of(clinic, "patient.merged")
    assert merged.facts == {"merged_patient_id": duplicate}


async def test_a_pending_start_of_the_duplicate_starts_for_the_survivor(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
) -> None:
    welcome = await make_journey(trigger_conditions={"event": "patient.registered", "delay": {"days": 1}})
    duplicate = await register(client, auth)
    await dispatcher.round()  # the duplicate's start waits for its day
    await merge(client, auth, clinic.patient_id, duplicate)
    await a_day_passes(clinic)

    await dispatcher.round()

    [start] = await starts_of(clinic, welcome["id"])
    assert (start.patient_id, start.status) == (clinic.patient_id, "started")
    assert len(await instances_of(clinic, welcome["id"], clinic.patient_id)) == 1
    assert await instances_of(clinic, welcome["id"], duplicate) == []


async def test_a_start_the_survivor_already_has_is_not_duplicated_by_the_merge(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
) -> None:
    once = await make_journey(
        trigger_conditions={"event": "patient.updated", "delay": {"days": 1}, "repeat": "never"}
    )
    duplicate = await register(client, auth)
    for patient_id in (clinic.patient_id, duplicate):  # both records earn the once-only journey
        resp = await client.patch(f"{API}/patients/{patient_id}", json={"city": "Braga"}, headers=auth)
        assert resp.status_code == 200, resp.text
    await dispatcher.round()

    await merge(client, auth, clinic.patient_id, duplicate)
    await a_day_passes(clinic)
    await dispatcher.round()

    kept, merged = await starts_of(clinic, once["id"])  # the survivor's event came first
    assert (kept.status, merged.status) == ("started", "skipped")
    assert merged.reason == "The patient was merged into a record that already has this start."
    assert {kept.patient_id, merged.patient_id} == {clinic.patient_id}
    assert len(await instances_of(clinic, once["id"], clinic.patient_id)) == 1


async def test_a_journey_the_duplicate_already_started_wins_over_the_survivors_pending_start(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
) -> None:
    once = await make_journey(
        trigger_conditions={"event": "patient.updated", "delay": {"days": 1}, "repeat": "never"}
    )
    duplicate = await register(client, auth)
    await client.patch(f"{API}/patients/{duplicate}", json={"city": "Braga"}, headers=auth)
    await dispatcher.round()
    await a_day_passes(clinic)
    await dispatcher.round()  # the duplicate is on the journey
    await client.patch(f"{API}/patients/{clinic.patient_id}", json={"city": "Faro"}, headers=auth)
    await dispatcher.round()  # the survivor's start waits for its day

    await merge(client, auth, clinic.patient_id, duplicate)
    await a_day_passes(clinic)
    await dispatcher.round()

    started, pending = await starts_of(clinic, once["id"])
    assert (started.status, pending.status) == ("started", "skipped")
    [instance] = await instances_of(clinic, once["id"], clinic.patient_id)  # the duplicate's, moved
    assert instance.id == started.instance_id


async def test_a_merge_keeps_the_duplicates_cooldowns_that_do_not_overlap_the_survivors(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
) -> None:
    recovery = await make_journey(
        trigger_conditions={
            "event": "encounter.discharged",
            "repeat": {"policy": "after_cooldown", "cooldown": {"days": 30}},
        }
    )
    duplicate = uuid.UUID(await register(client, auth))
    now = datetime.now(UTC)
    for patient_id, visit, days_ago in (
        (clinic.patient_id, "V1", 10),
        (duplicate, "V2", 60),
        (duplicate, "V3", 5),
    ):
        async with await clinic.session() as session:
            await emit(
                session,
                type=EventType.ENCOUNTER_DISCHARGED,
                patient_id=patient_id,
                subject=("encounter", visit),
                source="hl7",
                occurred_at=now - timedelta(days=days_ago),
            )
            await session.commit()
    await dispatcher.round()  # three journeys started: each record's cool-downs were its own

    await merge(client, auth, clinic.patient_id, duplicate)

    statuses = {s.record_key: (s.status, s.patient_id) for s in await starts_of(clinic, recovery["id"])}
    assert statuses == {
        "encounter:V2": ("started", clinic.patient_id),  # over before V1's began
        "encounter:V1": ("started", clinic.patient_id),
        "encounter:V3": ("skipped", clinic.patient_id),  # inside V1's cool-down
    }
