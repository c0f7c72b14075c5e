"""Journey use cases: placing patients on journeys and driving their workflows (the definitions' own use
cases live in `definitions` and are re-exported here).

An instance row gets exactly one workflow, `journey-instance-<id>`: its start is recorded in the instance's
own transaction (`core.workflow_commands`) and delivered after the commit, at once when Temporal answers and
by the relay otherwise, so the instance is created (201) whether or not Temporal is up. A cancellation is
recorded the same way, behind the start.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.database import after_commit
from core.errors import Conflict, NotFound, Unprocessable
from core.gateway import SA_INSTANCE_STATUS, SA_JOURNEY, StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import record_cancel, record_signal, record_start
from domain.communications.templates import MessageTemplate, to_snapshot
from domain.enums import JourneyInstanceStatus, RepeatPolicy, StageStatus
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
from domain.journeys.trigger_conditions import parse_trigger_conditions
from domain.patients.models import Patient
from domain.scheduling.models import Appointment

FINAL_STATUSES = {
    JourneyInstanceStatus.COMPLETED.value,
    JourneyInstanceStatus.CANCELLED.value,
    JourneyInstanceStatus.FAILED.value,
}


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
    *,
    idempotency_key: str | None = None,
) -> tuple[JourneyInstance, bool]:
    """Place a patient on a journey; (instance, created). Its workflow's start is recorded with it.

    Under an `idempotency_key` already used by this tenant, the existing instance is returned and nothing
    new is created or started (the database's unique key settles concurrent requests). A journey whose
    repeat policy allows a patient on it once at a time (`one_active_only`) refuses a second active
    instance (409), the database deciding between concurrent placements."""
    repo = JourneyInstanceRepository(session)
    if idempotency_key:
        existing = await repo.by_idempotency_key(idempotency_key)
        if existing is not None:
            return existing, False
    journey = await _active_journey(session, data.journey_id)
    patient = await session.scalar(select(Patient).where(Patient.id == data.patient_id))
    if patient is None:
        raise NotFound("Patient not found.")
    if data.appointment_id is not None:
        appointment = await session.scalar(select(Appointment).where(Appointment.id == data.appointment_id))
        if appointment is None:
            raise NotFound("Appointment not found.")
        if appointment.patient_id != patient.id:
            raise Unprocessable("The appointment belongs to another patient.", loc=("body", "appointment_id"))
    placement = {
        "patient_id": patient.id,
        "appointment_id": data.appointment_id,
        "encounter_id": data.encounter_id,
        "context": data.context,
        "idempotency_key": idempotency_key,
    }
    created = await _insert_instances(session, journey, [placement])
    if created:
        return created[0], True
    if idempotency_key and (existing := await repo.by_idempotency_key(idempotency_key)) is not None:
        return existing, False  # a concurrent request under the same key placed them first
    raise Conflict(ALREADY_ON_JOURNEY)


ALREADY_ON_JOURNEY = (
    "The patient is already on this journey, and its repeat policy allows one active instance at a time."
)


@dataclass(frozen=True)
class Placement:
    """One patient to place on a journey, under the idempotency key that makes it once."""

    patient_id: uuid.UUID
    idempotency_key: str


async def place_many(
    session: AsyncSession, journey_id: uuid.UUID, placements: Sequence[Placement]
) -> dict[uuid.UUID, JourneyInstance | None]:
    """Place many patients on one journey, as `create_instance` places one (snapshot, workflow start,
    idempotency key, the one-active rule), reading the journey once and inserting all in one statement.
    For each patient: the instance under its key (placed now, or before), or None when the journey's
    one-active rule refused them (already on it). Patients are the caller's to check (a campaign's
    members, frozen from the tenant's patients)."""
    if not placements:
        return {}
    journey = await _active_journey(session, journey_id)
    rows = [{"patient_id": p.patient_id, "idempotency_key": p.idempotency_key} for p in placements]
    placed: dict[uuid.UUID, JourneyInstance | None] = {
        i.patient_id: i for i in await _insert_instances(session, journey, rows)
    }
    left = {p.idempotency_key: p.patient_id for p in placements if p.patient_id not in placed}
    if left:  # placed by an earlier attempt under the same keys, or refused by the one-active rule
        earlier = await session.scalars(
            JourneyInstanceRepository(session).base().where(JourneyInstance.idempotency_key.in_(left))
        )
        placed.update({i.patient_id: i for i in earlier})
        placed.update({patient_id: None for patient_id in left.values() if patient_id not in placed})
    return placed


def one_active_only(journey: Journey) -> bool:
    """Whether the journey's repeat policy allows a patient on it once at a time: `never` (also not when
    placed by hand), and a default journey (started once for every new patient)."""
    if journey.is_default:
        return True
    trigger = parse_trigger_conditions(journey.trigger_conditions)
    return trigger is not None and trigger.repeat.policy == RepeatPolicy.NEVER.value


async def _active_journey(session: AsyncSession, journey_id: uuid.UUID) -> Journey:
    journey = await JourneyRepository(session).get_or_404(journey_id)
    if not journey.is_active:
        raise Conflict("This journey is inactive; activate it before placing patients on it.")
    return journey


async def _insert_instances(
    session: AsyncSession, journey: Journey, placements: list[dict[str, Any]]
) -> list[JourneyInstance]:
    """Insert one active instance per placement (its columns), with the journey's snapshot and stages, and
    record each one's workflow start; the instances made (a placement whose key is taken, or that the
    one-active rule refuses, makes none: `ON CONFLICT DO NOTHING`, the database deciding)."""
    stages = (await JourneyRepository(session).stages_of([journey.id]))[journey.id]
    snapshot = definition_snapshot(journey, stages, await templates_to_keep(session, stages))
    now, one_active = datetime.now(UTC), one_active_only(journey)
    rows = []
    for placement in placements:
        instance_id = uuid.uuid4()
        rows.append(
            {
                "context": {},
                **placement,
                "id": instance_id,
                "tenant_id": journey.tenant_id,
                "journey_id": journey.id,
                "status": JourneyInstanceStatus.ACTIVE.value,
                "definition_snapshot": snapshot,
                "one_active": one_active,
                "workflow_id": journey_workflow_id(instance_id),
                "started_at": now,
            }
        )
    created = list(
        await session.scalars(
            insert(JourneyInstance).on_conflict_do_nothing().returning(JourneyInstance),
            rows,
            execution_options={"populate_existing": True},
        )
    )
    if created and stages:
        await session.execute(
            insert(JourneyInstanceStage),
            [
                {
                    "tenant_id": journey.tenant_id,
                    "instance_id": instance.id,
                    "stage_id": stage.id,
                    "order_index": stage.order_index,
                    "name": stage.name,
                    "status": StageStatus.PENDING.value,
                }
                for instance in created
                for stage in stages
            ],
        )
    for instance in created:
        record_start(session, workflow_start(instance))
        after_commit(session, metrics.later(metrics.journey_started))
    return created


def workflow_start(instance: JourneyInstance) -> WorkflowStart:
    """The start of the instance's workflow: at most one run per instance, ever; searchable by the ids
    operators filter on in the Temporal UI (never PHI) and the instance's status."""
    return WorkflowStart(
        workflow=WORKFLOW_NAME,
        workflow_id=instance.workflow_id or journey_workflow_id(instance.id),
        input=workflow_input_for(instance),
        search_attributes={
            **ids_of(instance.tenant_id, instance.patient_id),
            SA_JOURNEY: str(instance.journey_id),
            SA_INSTANCE_STATUS: instance.status,
        },
        policy=StartPolicy.ONCE,
    )


def ensure_running(instance: JourneyInstance) -> None:
    """409 unless the instance is still running (not completed, cancelled or failed)."""
    if instance.status in FINAL_STATUSES:
        raise Conflict(f"The journey instance is already {instance.status}.")


def workflow_id_of(instance: JourneyInstance) -> str:
    """The id of the instance's workflow."""
    return instance.workflow_id or journey_workflow_id(instance.id)


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


async def cancel_instance(session: AsyncSession, instance_id: uuid.UUID) -> JourneyInstance:
    """Take the patient off the journey: mark the instance cancelled (its unfinished stages skipped) and
    record the cancellation of its workflow (its timers and pending sends stop once Temporal has it)."""
    repo = JourneyInstanceRepository(session)
    instance = await repo.get_or_404(instance_id)
    if instance.status == JourneyInstanceStatus.CANCELLED.value:
        return instance
    ensure_running(instance)
    if await mark_cancelled(session, instance.id, datetime.now(UTC)):
        record_cancel(session, workflow_id=workflow_id_of(instance))
        after_commit(session, metrics.later(metrics.journey_finished, JourneyInstanceStatus.CANCELLED.value))
    await session.refresh(instance)
    if instance.status != JourneyInstanceStatus.CANCELLED.value:
        ensure_running(instance)  # it completed or failed before it could be cancelled: 409
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
            workflow_id=workflow_id_of(instance),
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
