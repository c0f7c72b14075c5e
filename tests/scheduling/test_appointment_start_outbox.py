"""Reconciliation: an appointment committed without its workflow gets one, once, at start-up and later."""

from __future__ import annotations

import uuid
from datetime import timedelta

from activities.reconcile import ReconcileInput, reconcile_lost_starts
from sqlalchemy import select
from workflows.reconcile import RECONCILER_WORKFLOW_ID, ReconcilerInput

from activities import ActivityDeps
from core.database import bind_tenant
from domain.scheduling.models import Appointment
from tests.polling import eventually
from tests.scheduling.conftest import future
from worker import run_startup_reconciliation


async def appointment_without_workflow(
    sessionmaker, tenant_id, patient_id, practitioner_id, days: int
) -> uuid.UUID:
    """An appointment row committed, its workflow start lost (as after a crash between the two)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        start = future(days=days)
        appointment = Appointment(
            patient_id=patient_id,
            practitioner_id=uuid.UUID(practitioner_id),
            start_time=start,
            end_time=start + timedelta(minutes=30),
        )
        session.add(appointment)
        await session.commit()
        return appointment.id


async def started_at(sessionmaker, tenant_id, appointment_id):
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.scalar(
            select(Appointment.workflow_started_at).where(Appointment.id == appointment_id)
        )


async def test_reconciliation_starts_a_lost_appointment_workflow_once(
    tenant_id, temporal_env, scheduling_worker, settings, system_sessionmaker, make_patient, make_practitioner
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    lost = await appointment_without_workflow(
        system_sessionmaker, tenant_id, patient.id, practitioner["id"], 4
    )
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    scope = ReconcileInput(older_than_seconds=0, tenant_id=str(tenant_id))

    first = await reconcile_lost_starts(temporal_env.client, deps, scope)
    assert first.appointments == 1
    handle = temporal_env.client.get_workflow_handle(f"appointment-{lost}")
    run_id = (await handle.describe()).run_id
    assert await started_at(system_sessionmaker, tenant_id, lost) is not None

    second = await reconcile_lost_starts(temporal_env.client, deps, scope)
    assert second.appointments == 0
    assert (await handle.describe()).run_id == run_id


async def test_the_worker_start_up_reconciles_now_and_the_periodic_reconciler_catches_later_losses(
    tenant_id, temporal_env, scheduling_worker, settings, system_sessionmaker, make_patient, make_practitioner
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    before = await appointment_without_workflow(
        system_sessionmaker, tenant_id, patient.id, practitioner["id"], 4
    )
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    periodic = ReconcilerInput(interval_seconds=300, older_than_seconds=0, tenant_id=str(tenant_id))
    try:
        await run_startup_reconciliation(temporal_env.client, deps, periodic)
        assert await started_at(system_sessionmaker, tenant_id, before) is not None
        await run_startup_reconciliation(temporal_env.client, deps, periodic)  # a second start-up: harmless
        reconciler = temporal_env.client.get_workflow_handle(RECONCILER_WORKFLOW_ID)

        async def first_round_done() -> bool:
            return await reconciler.query("rounds") >= 1

        await eventually(first_round_done, "the reconciler's first round")

        later = await appointment_without_workflow(
            system_sessionmaker, tenant_id, patient.id, practitioner["id"], 5
        )
        await temporal_env.sleep(timedelta(minutes=6))  # the next round is due
        await eventually(lambda: started_at(system_sessionmaker, tenant_id, later), "the periodic round")
    finally:
        await temporal_env.client.get_workflow_handle(RECONCILER_WORKFLOW_ID).terminate("test finished")
