"""Journey use cases: placing patients on journeys and driving their workflows (the definitions' own use
cases live in `definitions` and are re-exported here).

An instance row gets exactly one workflow, `journey-instance-<id>`: it is started after the request's
commit, a repeated start is harmless (WorkflowAlreadyStartedError, and ids are never reused), and a start
lost between commit and Temporal is found again by `reconcile_journey_starts`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import metrics
from core.database import after_commit, scope_to
from core.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from core.temporal import (
    RPC_TIMEOUT,
    SA_INSTANCE_STATUS,
    SA_JOURNEY_ID,
    SA_PATIENT_ID,
    SA_TENANT_ID,
    TemporalAccess,
)
from core.workflow_commands import record_signal
from domain.communications.templates import MessageTemplate, to_snapshot
from domain.enums import JourneyInstanceStatus, StageStatus
from domain.journeys.definitions import add_stage as add_stage
from domain.journeys.definitions import create_journey as create_journey
from domain.journeys.definitions import journey_view as journey_view
from domain.journeys.definitions import journey_views as journey_views
from domain.journeys.definitions import templates_to_keep
from domain.journeys.definitions import update_journey as update_journey
from domain.journeys.definitions import update_stage as update_stage
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage, JourneyStage
from domain.journeys.plan import (
    SIGNAL_REPLY_RECEIVED,
    WORKFLOW_NAME,
    ReplyReceived,
    journey_workflow_id,
    workflow_input_for,
)
from domain.journeys.repository import JourneyInstanceRepository, JourneyRepository
from domain.journeys.schemas import JourneyInstanceCreate, JourneyInstanceStats
from domain.patients.models import Patient
from domain.scheduling.models import Appointment

log = logging.getLogger(__name__)
FINAL_STATUSES = {
    JourneyInstanceStatus.COMPLETED.value,
    JourneyInstanceStatus.CANCELLED.value,
    JourneyInstanceStatus.FAILED.value,
}


TemporalUnavailable = ServiceUnavailable  # Temporal could not be reached; the request's data is kept


# ---- instances ------------------------------------------------------------------------------------


def definition_snapshot(
    journey: Journey,
    stages: list[JourneyStage],
    tenant_templates: dict[str, list[MessageTemplate]] | None = None,
) -> dict[str, Any]:
    """The journey as it is now: what an instance runs, whatever later edits do to the definition.

    `templates` keeps a copy of each tenant template the stages name, in each of its languages (built-in
    ones need none), so editing, deactivating or deleting one later never changes the messages of instances
    already created."""
    return {
        "journey_id": str(journey.id),
        "name": journey.name,
        "journey_type": journey.journey_type,
        "snapshot_at": datetime.now(UTC).isoformat(),
        "stages": [
            {
                "id": str(s.id),
                "name": s.name,
                "order_index": s.order_index,
                "trigger_event": s.trigger_event,
                "actions": s.actions,
            }
            for s in sorted(stages, key=lambda s: s.order_index)
        ],
        "templates": {key: to_snapshot(v) for key, v in sorted((tenant_templates or {}).items())},
    }


async def create_instance(
    session: AsyncSession,
    data: JourneyInstanceCreate,
    access: TemporalAccess,
    *,
    idempotency_key: str | None = None,
) -> tuple[JourneyInstance, bool]:
    """Place a patient on a journey; (instance, created). The workflow starts after the commit.

    Under an `idempotency_key` already used by this tenant, the existing instance is returned and nothing
    new is created or started (the database's unique key settles concurrent requests)."""
    repo = JourneyInstanceRepository(session)
    if idempotency_key:
        existing = await repo.by_idempotency_key(idempotency_key)
        if existing is not None:
            return existing, False
    journeys = JourneyRepository(session)
    journey = await journeys.get_or_404(data.journey_id)
    if not journey.is_active:
        raise Conflict("This journey is inactive; activate it before placing patients on it.")
    patient = await session.scalar(select(Patient).where(Patient.id == data.patient_id))
    if patient is None:
        raise NotFound("Patient not found.")
    if data.appointment_id is not None:
        appointment = await session.scalar(select(Appointment).where(Appointment.id == data.appointment_id))
        if appointment is None:
            raise NotFound("Appointment not found.")
        if appointment.patient_id != patient.id:
            raise Unprocessable("The appointment belongs to another patient.", loc=("body", "appointment_id"))
    stages = (await journeys.stages_of([journey.id]))[journey.id]
    tenant_templates = await templates_to_keep(session, stages)
    instance_id = uuid.uuid4()
    now = datetime.now(UTC)
    instance = JourneyInstance(
        id=instance_id,
        journey_id=journey.id,
        patient_id=patient.id,
        appointment_id=data.appointment_id,
        encounter_id=data.encounter_id,
        context=data.context,
        status=JourneyInstanceStatus.ACTIVE.value,
        current_stage_id=None,
        definition_snapshot=definition_snapshot(journey, stages, tenant_templates),
        idempotency_key=idempotency_key,
        workflow_id=journey_workflow_id(instance_id),
        started_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(instance)
            await session.flush()
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if idempotency_key and constraint == "uq_journey_instances_tenant_idempotency_key":
            existing = await repo.by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing, False
        raise
    for stage in stages:
        session.add(
            JourneyInstanceStage(
                instance_id=instance.id,
                stage_id=stage.id,
                order_index=stage.order_index,
                name=stage.name,
                status=StageStatus.PENDING.value,
            )
        )
    await session.flush()
    await session.refresh(instance)

    async def start_after_commit() -> None:
        await start_instance_workflow(access, instance)
        await _mark_started(session, instance.id)

    after_commit(session, start_after_commit)
    return instance, True


async def _mark_started(session: AsyncSession, instance_id: uuid.UUID) -> None:
    await session.execute(
        update(JourneyInstance)
        .where(JourneyInstance.id == instance_id, JourneyInstance.workflow_started_at.is_(None))
        .values(workflow_started_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)  # loaded instances stay readable without I/O
    )


def search_attributes_for(instance: JourneyInstance) -> TypedSearchAttributes:
    """The ids operators filter on in the Temporal UI (never PHI), and the instance's status."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_TENANT_ID, str(instance.tenant_id)),
            SearchAttributePair(SA_PATIENT_ID, str(instance.patient_id)),
            SearchAttributePair(SA_JOURNEY_ID, str(instance.journey_id)),
            SearchAttributePair(SA_INSTANCE_STATUS, instance.status),
        ]
    )


async def start_instance_workflow(access: TemporalAccess, instance: JourneyInstance) -> bool:
    """Start the instance's workflow; False when it was already started. TemporalUnavailable when down."""
    try:
        client = await access.get_client()
        await client.start_workflow(
            WORKFLOW_NAME,
            workflow_input_for(instance),
            id=instance.workflow_id or journey_workflow_id(instance.id),
            task_queue=access.task_queue,
            search_attributes=search_attributes_for(instance),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            rpc_timeout=RPC_TIMEOUT,
        )
        metrics.journey_started()
        return True
    except WorkflowAlreadyStartedError:
        return False
    except (TemporalUnavailable, RPCError, OSError, TimeoutError) as exc:
        log.warning("could not start the workflow of journey instance %s: %s", instance.id, exc)
        raise TemporalUnavailable(
            "The journey instance was saved, but Temporal is unreachable: its workflow will be started "
            "automatically when Temporal is back.",
            extra={"instance_id": str(instance.id)},
        ) from exc


def ensure_running(instance: JourneyInstance) -> None:
    """409 unless the instance is still running (not completed, cancelled or failed)."""
    if instance.status in FINAL_STATUSES:
        raise Conflict(f"The journey instance is already {instance.status}.")


def workflow_handle(client: Client, instance: JourneyInstance) -> Any:
    """The handle of the instance's workflow."""
    return client.get_workflow_handle(instance.workflow_id or journey_workflow_id(instance.id))


async def mark_cancelled(session: AsyncSession, instance_id: uuid.UUID, at: datetime) -> bool:
    """Mark an active instance cancelled and its unfinished stages skipped; False when it was final."""
    result = await session.execute(
        update(JourneyInstance)
        .where(
            JourneyInstance.id == instance_id, JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value
        )
        .values(status=JourneyInstanceStatus.CANCELLED.value, cancelled_at=at)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await session.execute(
        update(JourneyInstanceStage)
        .where(
            JourneyInstanceStage.instance_id == instance_id,
            JourneyInstanceStage.status.in_([StageStatus.PENDING.value, StageStatus.ACTIVE.value]),
        )
        .values(status=StageStatus.SKIPPED.value, completed_at=at, notes="Journey cancelled.")
    )
    return True


async def cancel_instance(
    session: AsyncSession, access: TemporalAccess, instance_id: uuid.UUID
) -> JourneyInstance:
    """Cancel the instance's workflow (its timers and pending sends stop) and mark it cancelled."""
    repo = JourneyInstanceRepository(session)
    instance = await repo.get_or_404(instance_id)
    if instance.status == JourneyInstanceStatus.CANCELLED.value:
        return instance
    ensure_running(instance)
    try:
        client = await access.get_client()
        await workflow_handle(client, instance).cancel(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: never started, or already closed
            raise TemporalUnavailable("Temporal is unreachable; the journey was not cancelled.") from exc
        await session.refresh(instance)
        if instance.status == JourneyInstanceStatus.CANCELLED.value:
            return instance
        ensure_running(instance)
    except (OSError, TimeoutError) as exc:
        raise TemporalUnavailable("Temporal is unreachable; the journey was not cancelled.") from exc
    if await mark_cancelled(session, instance.id, datetime.now(UTC)):
        after_commit(session, metrics.later(metrics.journey_finished, JourneyInstanceStatus.CANCELLED.value))
    await session.refresh(instance)
    return instance


async def record_reply_received(
    session: AsyncSession, patient_id: uuid.UUID, communication_id: uuid.UUID
) -> int:
    """Record, with the stored inbound message, the `reply_received` signal to each of the patient's active
    journeys (delivered after the commit, and again until Temporal has it); how many."""
    instances = (
        await session.scalars(
            select(JourneyInstance).where(
                JourneyInstance.patient_id == patient_id,
                JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
            )
        )
    ).all()
    for instance in instances:
        record_signal(
            session,
            workflow_id=instance.workflow_id or journey_workflow_id(instance.id),
            signal=SIGNAL_REPLY_RECEIVED,
            arg=ReplyReceived(communication_id=str(communication_id)),
        )
    return len(instances)


async def instance_stats(
    repo: JourneyInstanceRepository, journey_id: uuid.UUID | None
) -> JourneyInstanceStats:
    """Totals by status and by journey name."""
    by_status, by_journey = await repo.counts(journey_id)
    statuses = {s.value: by_status.get(s.value, 0) for s in JourneyInstanceStatus}
    return JourneyInstanceStats(
        total=sum(by_status.values()),
        active=statuses["active"],
        completed=statuses["completed"],
        cancelled=statuses["cancelled"],
        by_status=statuses,
        by_journey=by_journey,
    )


async def reconcile_journey_starts(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: TemporalAccess,
    *,
    older_than_seconds: float = 60.0,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Start the workflows of active instances whose start was never confirmed; how many were started.

    Harmless to run at any time: a workflow that is already running is left alone and marked started."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with sessionmaker() as session:
        scope_to(session, tenant_id)
        lost = await JourneyInstanceRepository(session).lost_starts(older_than=cutoff)
        started = 0
        for instance in lost:
            if await start_instance_workflow(access, instance):
                started += 1
                log.info("started the lost workflow of journey instance %s", instance.id)
            await _mark_started(session, instance.id)
        await session.commit()
        return started
