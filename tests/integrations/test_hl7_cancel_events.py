"""A11 (cancel admit) and A13 (cancel discharge) take back their encounter event: a journey it started is
cancelled while it still runs (its workflow too), a delayed start it earned is withdrawn, and an event not yet
dispatched starts nothing; against the real dispatcher and the real Temporal dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from core.client_credentials import Scope
from core.database import bind_tenant
from core.events import DomainEvent
from domain.fhir.identifiers import PATIENT_IDS
from domain.journeys.models import JourneyInstance, JourneyTriggerStart
from domain.journeys.trigger_dispatch import TriggerDispatcher
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.ehr_messages import MRN_AUTHORITY, ack_code, adt, errors, pv1
from tests.integrations.hl7_messages import send
from tests.journeys.app_support import Wired, app_on, gateway_to
from tests.polling import eventually

JOURNEYS = "/api/v1/prm/journeys"
WAITING_STAGE = {"name": "Call the patient", "order_index": 0, "trigger_event": "manual", "actions": []}
KNEE = "PR1|1||27447^Total knee arthroplasty^CPT4|Total knee replacement|20261130090000"


@pytest.fixture
async def on_dev_server(
    app: Any, dev_env: WorkflowEnvironment, activity_deps: ActivityDeps
) -> AsyncIterator[Wired]:
    """The app on the dev server, a worker on a fresh task queue."""
    async with app_on(app, dev_env, activity_deps) as wired:
        yield wired


@pytest.fixture
async def hl7(client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory) -> dict[str, str]:
    """An HL7 client's token."""
    return await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))


async def journey_on(client: httpx.AsyncClient, auth: dict[str, str], event: str, **trigger: Any) -> str:
    """A journey started by `event` (once per visit), with one stage that waits for a coordinator."""
    response = await client.post(
        JOURNEYS,
        json={
            "name": f"After {event}",
            "stages": [WAITING_STAGE],
            "trigger_conditions": {"event": event, "repeat": "once_per_record", **trigger},
        },
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def dispatcher(
    wired: Wired, sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID
) -> TriggerDispatcher:
    """The worker's trigger dispatcher on this test's tenant and task queue."""
    return TriggerDispatcher(sessionmaker, gateway_to(wired.env.client, wired.task_queue), tenant_id=tenant)


async def rows(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID, model: Any, mrn: str
) -> list[Any]:
    """The patient's instances or trigger starts."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        patient_id = await PATIENT_IDS.find(session, MRN_AUTHORITY, mrn)
        found = await session.scalars(
            select(model).where(model.patient_id == patient_id).order_by(model.created_at)
        )
        return list(found.all())


async def test_a13_cancels_the_recovery_journey_the_mistaken_discharge_started_and_its_workflow(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    hl7: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    on_dev_server: Wired,
) -> None:
    await journey_on(client, auth, "encounter.discharged", conditions={"procedures": ["27447"]})
    discharge = adt("A03", "E6001", pv1("V-6001", discharged="20261201100000"), KNEE, language="ENG")
    assert ack_code(await send(client, hl7, discharge)) == "AA"
    await dispatcher(on_dev_server, system_sessionmaker, tenant_id).round()
    [instance] = await rows(system_sessionmaker, tenant_id, JourneyInstance, "E6001")
    handle = on_dev_server.env.client.get_workflow_handle(instance.workflow_id)

    async def status() -> WorkflowExecutionStatus | None:
        return (await handle.describe()).status

    assert await eventually(lambda: _is(status, WorkflowExecutionStatus.RUNNING), "the journey's workflow")

    cancel = await send(client, hl7, adt("A13", "E6001", pv1("V-6001"), language="ENG"))

    assert ack_code(cancel) == "AA" and errors(cancel.text) == []
    [instance] = await rows(system_sessionmaker, tenant_id, JourneyInstance, "E6001")
    assert instance.status == "cancelled"
    [start] = await rows(system_sessionmaker, tenant_id, JourneyTriggerStart, "E6001")
    assert start.status == "skipped" and "A13" in (start.reason or "")
    assert await eventually(
        lambda: _is(status, WorkflowExecutionStatus.CANCELED), "the workflow's cancellation"
    )


async def _is(status: Any, expected: WorkflowExecutionStatus) -> bool:
    return bool(await status() == expected)


async def test_a13_withdraws_a_delayed_start_and_a_corrected_discharge_earns_a_new_one(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    hl7: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    on_dev_server: Wired,
) -> None:
    await journey_on(client, auth, "encounter.discharged", delay={"days": 30})
    discharge = adt("A03", "E6101", pv1("V-6101", discharged="20261201100000"), language="ENG")
    assert ack_code(await send(client, hl7, discharge)) == "AA"
    rounds = dispatcher(on_dev_server, system_sessionmaker, tenant_id)
    assert (await rounds.round()).scheduled == 1

    assert ack_code(await send(client, hl7, adt("A13", "E6101", pv1("V-6101"), language="ENG"))) == "AA"

    [withdrawn] = await rows(system_sessionmaker, tenant_id, JourneyTriggerStart, "E6101")
    assert withdrawn.status == "skipped"
    assert await rows(system_sessionmaker, tenant_id, JourneyInstance, "E6101") == []
    # The real discharge, days later, under a new control id: the journey is due again for this visit.
    corrected = adt("A03", "E6101", pv1("V-6101", discharged="20261203100000"), language="ENG")
    assert ack_code(await send(client, hl7, corrected)) == "AA"
    assert (await rounds.round()).scheduled == 1
    starts = await rows(system_sessionmaker, tenant_id, JourneyTriggerStart, "E6101")
    assert [s.status for s in starts] == ["skipped", "pending"]


async def test_a11_before_the_dispatcher_saw_the_admission_starts_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    hl7: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    on_dev_server: Wired,
) -> None:
    await journey_on(client, auth, "encounter.admitted")
    assert ack_code(await send(client, hl7, adt("A01", "E6201", pv1("V-6201"), language="ENG"))) == "AA"

    cancel = await send(client, hl7, adt("A11", "E6201", pv1("V-6201"), language="ENG"))
    outcome = await dispatcher(on_dev_server, system_sessionmaker, tenant_id).round()

    assert ack_code(cancel) == "AA"
    assert (outcome.started, outcome.scheduled) == (0, 0)
    assert await rows(system_sessionmaker, tenant_id, JourneyInstance, "E6201") == []
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        [event] = (
            await session.scalars(select(DomainEvent).where(DomainEvent.type == "encounter.admitted"))
        ).all()
    assert event.dispatched_at is not None and event.dispatch_error is None  # withdrawn, not set aside


async def _events(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID, type: str
) -> list[DomainEvent]:
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        found = await session.scalars(
            select(DomainEvent).where(DomainEvent.type == type).order_by(DomainEvent.id)
        )
        return list(found.all())


async def test_a13_and_a11_emit_their_own_event_for_the_visit_with_the_facts_taken_back(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    hl7: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    discharge = adt("A03", "E6301", pv1("V-6301", discharged="20261201100000"), KNEE, language="ENG")
    assert ack_code(await send(client, hl7, discharge)) == "AA"
    cancel_discharge = adt("A13", "E6301", pv1("V-6301"), language="ENG")
    assert ack_code(await send(client, hl7, cancel_discharge)) == "AA"
    assert ack_code(await send(client, hl7, cancel_discharge)) == "AA"  # a resend: no second event
    # An A11 for a visit whose admission never reached us: the cancellation is still news.
    assert ack_code(await send(client, hl7, adt("A11", "E6301", pv1("V-6302"), language="ENG"))) == "AA"

    [discharged] = await _events(system_sessionmaker, tenant_id, "encounter.discharged")
    [undischarged] = await _events(system_sessionmaker, tenant_id, "encounter.discharge_cancelled")
    [unadmitted] = await _events(system_sessionmaker, tenant_id, "encounter.admission_cancelled")
    assert (undischarged.subject_type, undischarged.subject_id) == ("encounter", "V-6301")
    assert undischarged.patient_id == discharged.patient_id
    assert undischarged.facts["procedure_codes"] == ["27447"]
    assert undischarged.source == "hl7"
    assert (unadmitted.subject_id, unadmitted.patient_id, unadmitted.facts) == (
        "V-6302",
        discharged.patient_id,
        {},
    )


async def test_a_journey_triggered_by_a_cancelled_discharge_starts_on_an_a13(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    hl7: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    on_dev_server: Wired,
) -> None:
    await journey_on(client, auth, "encounter.discharge_cancelled", conditions={"procedures": ["27447"]})
    discharge = adt("A03", "E6401", pv1("V-6401", discharged="20261201100000"), KNEE, language="ENG")
    assert ack_code(await send(client, hl7, discharge)) == "AA"
    rounds = dispatcher(on_dev_server, system_sessionmaker, tenant_id)
    assert (await rounds.round()).started == 0

    assert ack_code(await send(client, hl7, adt("A13", "E6401", pv1("V-6401"), language="ENG"))) == "AA"

    assert (await rounds.round()).started == 1
    [instance] = await rows(system_sessionmaker, tenant_id, JourneyInstance, "E6401")
    assert instance.status == "active"
