"""Journeys that start themselves: domain events, trigger conditions, default journeys and the dispatcher,
against the real database and the real Temporal dev server (`dev_env`).

The dispatcher is driven one round at a time (as the worker's loop does every few seconds), scoped to the
test's tenant so rounds never touch other tests' events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from core.database import bind_tenant
from core.events import DomainEvent, EventType, emit, prune_dispatched
from core.periodic import PeriodicJob, PeriodicRunner
from domain.journeys.models import JourneyInstance, JourneyTriggerStart
from domain.journeys.trigger_dispatch import TriggerDispatcher
from tests.journeys.api_support import API, book, event_types, instances_of, register
from tests.journeys.app_support import Wired, gateway_to
from tests.journeys.conftest import JOURNEYS, Clinic
from tests.outbox import commands_for, tenant_relay, unreachable_gateway
from tests.polling import eventually


async def running(client: Client, instance: JourneyInstance) -> bool:
    """Whether the instance's workflow runs on Temporal."""
    assert instance.workflow_id is not None
    description = await client.get_workflow_handle(instance.workflow_id).describe()
    return description.status == WorkflowExecutionStatus.RUNNING


# ---- default journeys --------------------------------------------------------------------------------------


async def test_new_patient_gets_the_default_journey_once_even_with_two_dispatchers(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    on_dev_server: Wired,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    onboarding = await make_journey(name="New Patient Onboarding", is_default=True)
    patient_id = await register(client, auth)

    second = TriggerDispatcher(dispatcher.sessionmaker, dispatcher.gateway, tenant_id=clinic.tenant_id)
    await asyncio.gather(dispatcher.round(), second.round())
    await dispatcher.round()

    instances = await instances_of(clinic, onboarding["id"], patient_id)
    assert len(instances) == 1
    assert instances[0].context["trigger"]["event_type"] == "patient.registered"
    assert await eventually(lambda: running(on_dev_server.env.client, instances[0]), "the workflow")


async def test_the_dispatcher_job_starts_journeys_by_itself_until_stopped(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    onboarding = await make_journey(is_default=True)
    # The worker's periodic job (`worker.periodic_jobs`), on this test's tenant, every 0.1 s.
    runner = PeriodicRunner(
        dispatcher.sessionmaker.kw["bind"], [PeriodicJob("journey-triggers", 0.1, dispatcher)]
    )
    stop = asyncio.Event()
    running_loop = asyncio.create_task(runner.run(stop))
    try:
        patient_id = await register(client, auth)
        assert await eventually(lambda: instances_of(clinic, onboarding["id"], patient_id), "the start")
    finally:
        stop.set()
        await asyncio.wait_for(running_loop, timeout=30)


async def test_default_journey_is_not_started_for_existing_patients_or_updates(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    patient_id = await register(client, auth)
    await dispatcher.round()
    onboarding = await make_journey(is_default=True)
    patch = await client.patch(f"{API}/patients/{patient_id}", json={"city": "Porto"}, headers=auth)
    assert patch.status_code == 200

    await dispatcher.round()

    assert await instances_of(clinic, onboarding["id"], patient_id) == []


# ---- trigger conditions ------------------------------------------------------------------------------------


async def test_no_show_starts_the_rebooking_journey_timed_against_the_appointment(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    rebooking = await make_journey(
        name="Rebook after a no-show",
        trigger_conditions={
            "event": "appointment.no_show",
            "conditions": {"appointment_types": ["consultation"]},
        },
    )
    missed = await book(client, auth, clinic, 3, appointment_type="consultation")
    other = await book(client, auth, clinic, 4, appointment_type="follow_up")
    for appointment_id in (missed, other):
        resp = await client.patch(
            f"{API}/appointments/{appointment_id}", json={"status": "no_show"}, headers=auth
        )
        assert resp.status_code == 200, resp.text

    await dispatcher.round()

    instances = await instances_of(clinic, rebooking["id"], clinic.patient_id)
    assert [str(i.appointment_id) for i in instances] == [missed]


async def test_a_repeated_event_changes_nothing(
    clinic: Clinic, dispatcher: TriggerDispatcher, make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    journey = await make_journey(trigger_conditions={"event": "encounter.discharged", "repeat": "never"})
    for visit in ("V1", "V1", "V2"):  # the same message twice, then another discharge
        async with await clinic.session() as session:
            await emit(
                session,
                tenant_id=clinic.tenant_id,
                type=EventType.ENCOUNTER_DISCHARGED,
                patient_id=clinic.patient_id,
                subject=("encounter", visit),
                source="hl7",
                dedupe_key=f"hl7:{visit}",
            )
            await session.commit()
        await dispatcher.round()
        await dispatcher.round()

    async with await clinic.session() as session:
        events = await session.scalar(select(func.count()).select_from(DomainEvent))
    assert events == 2  # the repeated message emitted once
    assert len(await instances_of(clinic, journey["id"], clinic.patient_id)) == 1  # `never` again


async def test_once_per_record_starts_once_for_each_appointment(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    prep = await make_journey(trigger_conditions={"event": "appointment.rescheduled"})
    first = await book(client, auth, clinic, 3)
    second = await book(client, auth, clinic, 4)
    for appointment_id, days in ((first, 10), (first, 11), (second, 12)):
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
        body = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
        resp = await client.patch(f"{API}/appointments/{appointment_id}", json=body, headers=auth)
        assert resp.status_code == 200, resp.text

    await dispatcher.round()

    instances = await instances_of(clinic, prep["id"], clinic.patient_id)
    assert sorted(str(i.appointment_id) for i in instances) == sorted([first, second])


async def test_an_event_while_temporal_was_down_starts_its_journey_once_temporal_is_back(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    on_dev_server: Wired,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    onboarding = await make_journey(is_default=True)
    patients = [await register(client, auth), await register(client, auth)]
    offline = TriggerDispatcher(system_sessionmaker, unreachable_gateway(), tenant_id=clinic.tenant_id)

    outcome = await offline.round()  # both instances are kept, with their starts waiting for Temporal

    assert outcome.started == 2
    instances = [i for p in patients for i in await instances_of(clinic, onboarding["id"], p)]
    assert len(instances) == 2 and all(i.status == "active" for i in instances)
    workflow_ids = [str(i.workflow_id) for i in instances]
    pending = await commands_for(system_sessionmaker, *workflow_ids)
    assert [(c.kind, c.delivered_at) for c in pending] == [("start", None), ("start", None)]
    for instance in instances:
        with pytest.raises(RPCError):  # not on Temporal yet
            await on_dev_server.env.client.get_workflow_handle(str(instance.workflow_id)).describe()

    relay = tenant_relay(
        system_sessionmaker, clinic.tenant_id, gateway_to(on_dev_server.env.client, on_dev_server.task_queue)
    )
    await relay()  # Temporal is back: a relay round delivers both starts

    delivered = await commands_for(system_sessionmaker, *workflow_ids)
    assert all(c.delivered_at is not None and c.outcome == "delivered" for c in delivered)
    for instance in instances:
        assert await eventually(lambda: running(on_dev_server.env.client, instance), "the workflow")  # noqa: B023
    await relay()  # a second round has nothing left to deliver
    assert [(c.id, c.delivered_at) for c in await commands_for(system_sessionmaker, *workflow_ids)] == [
        (c.id, c.delivered_at) for c in delivered
    ]
    assert [len(await instances_of(clinic, onboarding["id"], p)) for p in patients] == [1, 1]


async def test_a_deactivated_journey_starts_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    onboarding = await make_journey(is_default=True)
    resp = await client.patch(f"{JOURNEYS}/{onboarding['id']}", json={"is_active": False}, headers=auth)
    assert resp.status_code == 200
    patient_id = await register(client, auth)

    await dispatcher.round()

    assert await instances_of(clinic, onboarding["id"], patient_id) == []


async def test_a_delayed_start_waits_and_a_journey_deactivated_meanwhile_starts_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    welcome = await make_journey(trigger_conditions={"event": "patient.registered", "delay": {"days": 1}})
    later = await make_journey(trigger_conditions={"event": "patient.registered", "delay": {"days": 1}})
    patient_id = await register(client, auth)

    await dispatcher.round()
    assert await instances_of(clinic, welcome["id"], patient_id) == []  # not due yet
    resp = await client.patch(f"{JOURNEYS}/{later['id']}", json={"is_active": False}, headers=auth)
    assert resp.status_code == 200
    async with await clinic.session() as session:  # a day passes
        await session.execute(
            update(JourneyTriggerStart).values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    await dispatcher.round()

    assert len(await instances_of(clinic, welcome["id"], patient_id)) == 1
    assert await instances_of(clinic, later["id"], patient_id) == []
    async with await clinic.session() as session:
        skipped = await session.scalar(
            select(JourneyTriggerStart).where(JourneyTriggerStart.journey_id == uuid.UUID(later["id"]))
        )
    assert skipped is not None and skipped.status == "skipped"


async def test_a_keyword_in_an_inbound_message_starts_a_journey(
    clinic: Clinic, dispatcher: TriggerDispatcher, make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    from domain.communications.models import Communication

    journey = await make_journey(
        trigger_conditions={"event": "message.received", "conditions": {"keywords": ["reschedule"]}}
    )
    for text in ("Thanks, see you then", "Can I RESCHEDULE please?"):
        async with await clinic.session() as session:
            message = Communication(
                patient_id=clinic.patient_id,
                direction="inbound",
                channel="sms",
                message=text,
                status="received",
            )
            session.add(message)
            await session.flush()
            await emit(
                session,
                type=EventType.MESSAGE_RECEIVED,
                patient_id=clinic.patient_id,
                subject=("communication", message.id),
                facts={"channel": "sms"},
                source="webhook",
            )
            await session.commit()

    await dispatcher.round()

    assert len(await instances_of(clinic, journey["id"], clinic.patient_id)) == 1


# ---- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "field"),
    [
        ({"event": "appointment.no_show", "conditions": {"keywords": ["late"]}}, "keywords"),
        ({"event": "patient.exploded"}, "event"),
        ({"event": "patient.registered", "delay": {"days": 400}}, "days"),
        ({"event": "patient.registered", "conditions": {"age": {"min": 70, "max": 20}}}, "age"),
        ({"event": "ticket.resolved", "repeat": {"policy": "after_cooldown"}}, "cooldown"),
        ({"conditions": {"genders": ["female"]}}, "event"),
    ],
)
async def test_a_bad_matcher_is_refused_with_422_naming_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    conditions: dict[str, Any],
    field: str,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    created = await client.post(
        JOURNEYS, json={"name": "Bad", "trigger_conditions": conditions}, headers=auth
    )
    assert created.status_code == 422
    assert field in created.text

    journey = await make_journey(trigger_conditions={"event": "patient.registered"})
    patched = await client.patch(
        f"{JOURNEYS}/{journey['id']}", json={"trigger_conditions": conditions}, headers=auth
    )
    assert patched.status_code == 422
    assert field in patched.text
    stored = (await client.get(f"{JOURNEYS}/{journey['id']}", headers=auth)).json()
    assert stored["trigger_conditions"]["event"] == "patient.registered"


async def test_empty_conditions_still_mean_no_automatic_start(
    client: httpx.AsyncClient, auth: dict[str, str], make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    journey = await make_journey(trigger_conditions={})
    assert journey["trigger_conditions"] == {}
    resp = await client.patch(f"{JOURNEYS}/{journey['id']}", json={"trigger_conditions": None}, headers=auth)
    assert resp.json()["trigger_conditions"] == {}


async def test_conditions_are_stored_in_their_normal_form(
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    journey = await make_journey(
        trigger_conditions={"event": "appointment.completed", "repeat": "never", "delay": {"hours": 2}}
    )
    assert journey["trigger_conditions"] == {
        "event": "appointment.completed",
        "conditions": {},
        "delay": {"days": 0, "hours": 2, "minutes": 0, "seconds": 0},
        "repeat": {"policy": "never"},
    }


# ---- dry run -----------------------------------------------------------------------------------------------


async def test_dry_run_shows_which_recent_events_match_and_why_not_the_others(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    journey = await make_journey(
        trigger_conditions={"event": "patient.registered", "conditions": {"languages": ["es"]}}
    )
    spanish = await register(client, auth, preferred_language="es-MX")
    english = await register(client, auth, preferred_language="en")
    await client.patch(f"{API}/patients/{english}", json={"city": "Leeds"}, headers=auth)

    resp = await client.get(
        f"{JOURNEYS}/{journey['id']}/triggers/test", params={"page_size": 2}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == 3 and body["has_next"] is True
    rest = (
        await client.get(
            f"{JOURNEYS}/{journey['id']}/triggers/test", params={"page_size": 2, "page": 2}, headers=auth
        )
    ).json()
    verdicts = {(i["type"], i["patient_id"]): i for i in body["items"] + rest["items"]}
    assert verdicts[("patient.registered", spanish)]["matched"] is True
    assert verdicts[("patient.registered", spanish)]["start"] is None  # nothing was started
    assert verdicts[("patient.registered", english)]["reasons"] == [
        "languages: the patient's preferred language is not listed"
    ]
    assert verdicts[("patient.updated", english)]["reasons"] == [
        "the trigger is patient.registered, not patient.updated"
    ]


async def test_dry_run_of_another_tenants_journey_is_404(
    client: httpx.AsyncClient,
    headers_for: Callable[..., dict[str, str]],
    make_tenant: Callable[..., Awaitable[uuid.UUID]],
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    journey = await make_journey(trigger_conditions={"event": "patient.registered"})
    other = headers_for(await make_tenant(name="Other Clinic"))
    resp = await client.get(f"{JOURNEYS}/{journey['id']}/triggers/test", headers=other)
    assert resp.status_code == 404


async def test_events_are_tenant_scoped(
    clinic: Clinic, make_tenant: Callable[..., Awaitable[uuid.UUID]]
) -> None:
    other = await make_tenant(name="Elsewhere")
    async with await clinic.session() as session:
        await emit(session, type=EventType.PATIENT_UPDATED, patient_id=clinic.patient_id)
        await session.commit()
    async with clinic.sessionmaker() as session:
        bind_tenant(session, other)
        assert await session.scalar(select(func.count()).select_from(DomainEvent)) == 0


async def test_dispatched_events_are_pruned_after_the_retention_and_their_starts_remain(
    clinic: Clinic, dispatcher: TriggerDispatcher, make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    journey = await make_journey(trigger_conditions={"event": "patient.updated", "repeat": "never"})
    async with await clinic.session() as session:
        await emit(session, type=EventType.PATIENT_UPDATED, patient_id=clinic.patient_id)
        await session.commit()
    await dispatcher.round()
    async with await clinic.session() as session:  # it happened long ago
        await session.execute(update(DomainEvent).values(occurred_at=datetime.now(UTC) - timedelta(days=100)))
        await session.commit()

    async with clinic.sessionmaker() as session:
        assert await prune_dispatched(session, older_than=timedelta(days=90)) >= 1

    async with await clinic.session() as session:
        assert await session.scalar(select(func.count()).select_from(DomainEvent)) == 0
        start = await session.scalar(select(JourneyTriggerStart))
    assert start is not None and start.status == "started" and start.event_id is None
    assert len(await instances_of(clinic, journey["id"], clinic.patient_id)) == 1


# ---- what emits --------------------------------------------------------------------------------------------


async def test_each_change_through_the_api_emits_its_event_once(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    primary = await register(client, auth)
    duplicate = await register(client, auth)
    await client.patch(f"{API}/patients/{primary}", json={"city": "Porto"}, headers=auth)
    merge = {"primary_patient_id": primary, "duplicate_patient_id": duplicate}
    assert (await client.post(f"{API}/patients/merge", json=merge, headers=auth)).status_code == 200
    visit = await book(client, auth, clinic, 3)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    moved = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
    for body in (moved, {"status": "checked_in"}, {"status": "completed"}):
        resp = await client.patch(f"{API}/appointments/{visit}", json=body, headers=auth)
        assert resp.status_code == 200, resp.text
    missed, cancelled = await book(client, auth, clinic, 6), await book(client, auth, clinic, 7)
    await client.patch(f"{API}/appointments/{missed}", json={"status": "no_show"}, headers=auth)
    assert (await client.post(f"{API}/appointments/{cancelled}/cancel", headers=auth)).status_code == 200
    ticket = await client.post(
        f"{API}/tickets", json={"patient_id": str(clinic.patient_id), "title": "Call back"}, headers=auth
    )
    assert ticket.status_code == 201, ticket.text
    await client.patch(f"{API}/tickets/{ticket.json()['id']}", json={"status": "resolved"}, headers=auth)

    assert await event_types(clinic) == [
        "patient.registered",
        "patient.registered",
        "patient.updated",
        "patient.merged",
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.checked_in",
        "appointment.completed",
        "appointment.booked",
        "appointment.booked",
        "appointment.no_show",
        "appointment.cancelled",
        "ticket.resolved",
    ]


async def test_a_change_that_rolls_back_emits_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    visit = await book(client, auth, clinic, 3)
    clash = {
        "patient_id": str(clinic.patient_id),
        "practitioner_id": str(clinic.practitioner_id),
        "start_time": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        "end_time": (datetime.now(UTC) + timedelta(days=3, minutes=10)).isoformat(),
    }
    assert (await client.post(f"{API}/appointments", json=clash, headers=auth)).status_code == 409
    assert visit and await event_types(clinic) == ["appointment.booked"]


# ---- repeat policies ---------------------------------------------------------------------------------------


async def discharge(clinic: Clinic, visit: str, at: datetime) -> None:
    """An EHR's discharge of the clinic's patient, at `at`."""
    async with await clinic.session() as session:
        await emit(
            session,
            type=EventType.ENCOUNTER_DISCHARGED,
            patient_id=clinic.patient_id,
            subject=("encounter", visit),
            facts={"procedure_names": ["Total knee replacement"], "procedure_codes": ["27447"]},
            source="hl7",
            occurred_at=at,
        )
        await session.commit()


async def test_after_cooldown_starts_again_only_once_the_cooldown_has_passed(
    clinic: Clinic, dispatcher: TriggerDispatcher, make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    recovery = await make_journey(
        name="Post-Surgery Recovery",
        trigger_conditions={
            "event": "encounter.discharged",
            "conditions": {"procedures": ["knee replacement"]},
            "repeat": {"policy": "after_cooldown", "cooldown": {"days": 30}},
        },
    )
    now = datetime.now(UTC)
    await discharge(clinic, "V1", now - timedelta(days=40))
    await discharge(clinic, "V2", now - timedelta(days=20))  # within 30 days of V1: refused
    await discharge(clinic, "V3", now - timedelta(seconds=1))  # 39 days after V1

    await dispatcher.round()

    instances = await instances_of(clinic, recovery["id"], clinic.patient_id)
    assert sorted(i.context["trigger"]["record"] for i in instances) == ["encounter:V1", "encounter:V3"]


async def test_never_does_not_start_a_patient_already_placed_on_the_journey_by_hand(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    journey = await make_journey(trigger_conditions={"event": "patient.updated", "repeat": "never"})
    body = {"journey_id": journey["id"], "patient_id": str(clinic.patient_id)}
    assert (await client.post(f"{JOURNEYS}/instances", json=body, headers=auth)).status_code == 201
    await client.patch(f"{API}/patients/{clinic.patient_id}", json={"city": "Braga"}, headers=auth)

    await dispatcher.round()

    assert len(await instances_of(clinic, journey["id"], clinic.patient_id)) == 1


async def test_the_dry_run_is_in_the_audit_trail(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: Any,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    clinic: Clinic,
    make_journey: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    from core.audit import AuditRecord

    journey = await make_journey()
    assert (await client.get(f"{JOURNEYS}/{journey['id']}/triggers/test", headers=auth)).status_code == 200
    await app.state.audit_buffer.flush()
    async with system_sessionmaker() as session:
        actions = await session.scalars(
            select(AuditRecord.action).where(AuditRecord.tenant_id == clinic.tenant_id)
        )
        assert "journey_triggers.test" in list(actions)


async def test_a_start_the_journey_refuses_is_skipped_with_its_reason_and_the_event_is_done(
    clinic: Clinic, dispatcher: TriggerDispatcher, make_journey: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    journey = await make_journey(trigger_conditions={"event": "appointment.completed"})
    async with await clinic.session() as session:  # an appointment deleted before the dispatch
        await emit(
            session,
            type=EventType.APPOINTMENT_COMPLETED,
            patient_id=clinic.patient_id,
            subject=("appointment", uuid.uuid4()),
        )
        await session.commit()

    await dispatcher.round()

    assert await instances_of(clinic, journey["id"], clinic.patient_id) == []
    async with await clinic.session() as session:
        start = await session.scalar(select(JourneyTriggerStart))
        event = await session.scalar(select(DomainEvent))
    assert start is not None and (start.status, start.reason) == ("skipped", "Appointment not found.")
    assert event is not None and event.dispatched_at is not None and event.dispatch_attempts == 0
