"""An HL7 A03 discharge starts the journey whose trigger it matches, once, through the real dispatcher and
the real Temporal dev server, whether the worker was up when the message came or not."""

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
from domain.fhir.identifiers import PATIENT_IDS
from domain.journeys.models import JourneyInstance
from domain.journeys.trigger_dispatch import TriggerDispatcher
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.hl7_messages import MRN_AUTHORITY, adt, discharge_after_knee_replacement, pv1
from tests.journeys.app_support import Wired, app_on, gateway_to
from tests.polling import eventually

JOURNEYS = "/api/v1/prm/journeys"
WAITING_STAGE = {"name": "Call the patient", "order_index": 0, "trigger_event": "manual", "actions": []}
RECOVERY_TRIGGER = {
    "event": "encounter.discharged",
    "conditions": {"procedures": ["knee replacement", "27447"]},
    "repeat": "once_per_record",
}


@pytest.fixture
async def on_dev_server(
    app: Any, dev_env: WorkflowEnvironment, activity_deps: ActivityDeps
) -> AsyncIterator[Wired]:
    """The app on the dev server, a worker on a fresh task queue."""
    async with app_on(app, dev_env, activity_deps) as wired:
        yield wired


def dispatcher_for(
    wired: Wired, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> TriggerDispatcher:
    """The worker's trigger dispatcher, on this test's tenant and task queue."""
    return TriggerDispatcher(
        sessionmaker, gateway_to(wired.env.client, wired.task_queue), tenant_id=tenant_id
    )


async def send(client: httpx.AsyncClient, auth: dict[str, str], body: str) -> str:
    """POST one message; MSA-1 of its ACK."""
    response = await client.post(
        "/hl7/v2", content=body.encode(), headers={**auth, "Content-Type": "application/hl7-v2"}
    )
    assert response.status_code == 200, response.text
    return next(line.split("|")[1] for line in response.text.split("\r") if line.startswith("MSA|"))


async def instances(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, journey_id: str, mrn: str
) -> list[JourneyInstance]:
    """The journey's instances for the patient General Hospital's MRN names."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        patient_id = await PATIENT_IDS.find(session, MRN_AUTHORITY, mrn)
        rows = await session.scalars(
            select(JourneyInstance).where(
                JourneyInstance.journey_id == uuid.UUID(journey_id), JourneyInstance.patient_id == patient_id
            )
        )
        return list(rows.all())


async def test_a_knee_replacement_discharge_sent_twice_while_the_worker_is_down_starts_recovery_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    tenant_id: uuid.UUID,
    make_client: ClientFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    on_dev_server: Wired,
) -> None:
    hl7_auth = await bearer_for(client, await make_client(tenant_id, (Scope.HL7,)))
    journey = await client.post(
        JOURNEYS,
        json={
            "name": "Post-Surgery Recovery",
            "stages": [WAITING_STAGE],
            "trigger_conditions": RECOVERY_TRIGGER,
        },
        headers=auth,
    )
    assert journey.status_code == 201, journey.text
    recovery = journey.json()["id"]
    discharge = discharge_after_knee_replacement("MRN-KNEE-1", "V-100")

    # The worker (and its dispatcher) is down: the EHR sends the discharge, then resends it.
    assert await send(client, hl7_auth, discharge) == "AA"
    assert await send(client, hl7_auth, discharge) == "AA"
    # Another patient's discharge after another operation matches nothing.
    other = adt(
        "A03",
        "MRN-APPX-1",
        pv1("V-200", discharged="20261201100000"),
        "PR1|1||44950^Appendectomy^CPT4|Appendectomy",
        family="Roe",
        given="Richard",
        phone="5550177",
    )
    assert await send(client, hl7_auth, other) == "AA"
    assert await instances(system_sessionmaker, tenant_id, recovery, "MRN-KNEE-1") == []

    # The worker comes back: its dispatcher (two rounds, as its loop would) starts the journey once.
    dispatcher = dispatcher_for(on_dev_server, system_sessionmaker, tenant_id)
    await dispatcher.round()
    await dispatcher.round()

    [instance] = await instances(system_sessionmaker, tenant_id, recovery, "MRN-KNEE-1")
    assert instance.context["trigger"]["event_type"] == "encounter.discharged"
    assert instance.context["trigger"]["record"] == "encounter:V-100"
    assert await instances(system_sessionmaker, tenant_id, recovery, "MRN-APPX-1") == []

    async def running() -> bool:
        assert instance.workflow_id is not None
        described = await on_dev_server.env.client.get_workflow_handle(instance.workflow_id).describe()
        return described.status == WorkflowExecutionStatus.RUNNING

    assert await eventually(running, "the recovery journey's workflow")
    # Sent a third time, after the start: still one.
    assert await send(client, hl7_auth, discharge) == "AA"
    await dispatcher.round()
    assert len(await instances(system_sessionmaker, tenant_id, recovery, "MRN-KNEE-1")) == 1
