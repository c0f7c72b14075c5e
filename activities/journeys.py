"""Journey activities: stage and instance bookkeeping, messages, tickets, appointment times, lost starts.

Each takes one dataclass of ids, opens its own transaction scoped to the input's tenant, and is idempotent
under retry: messages and tickets carry the key `journey:{instance}:{order_index}:{action_index}`, which
the database holds unique per tenant. What to send is read from the instance's `definition_snapshot` (tenant
templates included, as they were when it was created), so no message text ever passes through Temporal.
Invalid input fails for good (non-retryable ApplicationError); anything else is retried by the workflow's
RetryPolicy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import ActivityDeps
from core.errors import DomainError
from domain.communications import service as communications
from domain.communications import templates
from domain.communications.templates import MessageTemplate, TemplateError
from domain.enums import AppointmentStatus, Channel, JourneyInstanceStatus, StageStatus
from domain.journeys import service as journeys
from domain.journeys.models import JourneyInstance
from domain.journeys.plan import action_idempotency_key, journey_workflow_id, reply_timeout_idempotency_key
from domain.journeys.repository import JourneyInstanceRepository
from domain.journeys.triggers import (
    DEFAULT_TIMEOUT_TICKET,
    TicketSpec,
    parse_actions,
    parse_trigger,
    tenant_template_id,
)
from domain.patients.models import Patient
from domain.scheduling.models import Appointment
from domain.scheduling.notifications import appointment_facts
from domain.tickets import service as tickets


@dataclass
class InstanceRef:
    """One journey instance."""

    tenant_id: str
    instance_id: str


@dataclass
class ActionInput:
    """One action of one stage of an instance (`action_index` -1: the stage trigger's timeout ticket)."""

    tenant_id: str
    instance_id: str
    order_index: int
    action_index: int


@dataclass
class StageStatusInput:
    """A stage's new status, at the workflow's time, with an optional PHI-free note."""

    tenant_id: str
    instance_id: str
    order_index: int
    status: str
    at: str
    notes: str | None = None


@dataclass
class InstanceStatusInput:
    """An instance's new status, at the workflow's time."""

    tenant_id: str
    instance_id: str
    status: str
    at: str
    notes: str | None = None


def _invalid(reason: str) -> ApplicationError:
    return ApplicationError(reason, type="InvalidJourneyAction", non_retryable=True)


def _snapshot_stage(instance: JourneyInstance, order_index: int) -> dict[str, Any]:
    for stage in instance.definition_snapshot.get("stages", []):
        if stage["order_index"] == order_index:
            return stage
    raise _invalid(f"stage {order_index} is not in the instance's definition")


def _snapshot_action(instance: JourneyInstance, order_index: int, action_index: int) -> Any:
    actions = parse_actions(_snapshot_stage(instance, order_index).get("actions"))
    if not 0 <= action_index < len(actions):
        raise _invalid(f"stage {order_index} has no action {action_index}")
    return actions[action_index]


def _kept_template(instance: JourneyInstance, data: ActionInput, action: Any) -> MessageTemplate | None:
    """The tenant template a message action names, from the copy kept in the instance's snapshot (the text
    it had when the instance was created); None for a built-in template or literal text."""
    template_id = tenant_template_id(action)
    if template_id is None:
        return None
    kept = (instance.definition_snapshot.get("templates") or {}).get(template_id)
    if kept is None:  # e.g. an instance created before its snapshot kept tenant templates
        raise _invalid(
            f"action {data.action_index} of stage {data.order_index} names template {template_id!r}, "
            "which is neither built-in nor kept in the instance's definition"
        )
    return templates.from_snapshot(template_id, kept)


class JourneyActivities:
    """The journey workflow's activities, bound to the worker's dependencies."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    async def _instance(self, session: AsyncSession, instance_id: str) -> JourneyInstance:
        instance = await JourneyInstanceRepository(session).get(uuid.UUID(instance_id))
        if instance is None:
            raise _invalid("the journey instance does not exist")
        return instance

    @activity.defn(name="journey_record_stage_status")
    async def record_stage_status(self, data: StageStatusInput) -> None:
        """Record a stage's status and timestamps (ignored once the instance is cancelled or finished)."""
        async with self.deps.tenant_session(data.tenant_id) as session:
            recorded = await JourneyInstanceRepository(session).record_stage(
                uuid.UUID(data.instance_id),
                data.order_index,
                StageStatus(data.status).value,
                datetime.fromisoformat(data.at),
                data.notes,
            )
            if recorded is None:
                raise _invalid(f"the instance has no stage {data.order_index}")
            await session.commit()

    @activity.defn(name="journey_record_instance_status")
    async def record_instance_status(self, data: InstanceStatusInput) -> None:
        """Record that the instance completed or failed (ignored once it is no longer active)."""
        async with self.deps.tenant_session(data.tenant_id) as session:
            await JourneyInstanceRepository(session).finish(
                uuid.UUID(data.instance_id),
                JourneyInstanceStatus(data.status),
                datetime.fromisoformat(data.at),
            )
            await session.commit()

    @activity.defn(name="journey_mark_instance_cancelled")
    async def mark_instance_cancelled(self, data: InstanceStatusInput) -> None:
        """Record that the instance was cancelled (its unfinished stages become skipped)."""
        async with self.deps.tenant_session(data.tenant_id) as session:
            await journeys.mark_cancelled(
                session, uuid.UUID(data.instance_id), datetime.fromisoformat(data.at)
            )
            await session.commit()

    @activity.defn(name="journey_load_appointment_time")
    async def load_appointment_time(self, data: InstanceRef) -> str | None:
        """The start time (ISO 8601) of the instance's appointment; None without one or once cancelled."""
        async with self.deps.tenant_session(data.tenant_id) as session:
            instance = await self._instance(session, data.instance_id)
            if instance.appointment_id is None:
                return None
            appointment = await session.scalar(
                select(Appointment).where(Appointment.id == instance.appointment_id)
            )
            if appointment is None or appointment.status == AppointmentStatus.CANCELLED.value:
                return None
            return appointment.start_time.isoformat()

    @activity.defn(name="journey_send_message")
    async def send_journey_message(self, data: ActionInput) -> str | None:
        """Render and send a stage's message once; the communication's id (None once the journey stopped)."""
        async with self.deps.tenant_session(data.tenant_id) as session:
            instance = await self._instance(session, data.instance_id)
            if instance.status != JourneyInstanceStatus.ACTIVE.value:
                return None
            action = _snapshot_action(instance, data.order_index, data.action_index)
            if action.type not in ("send_message", "schedule_reminder"):
                raise _invalid(f"action {data.action_index} of stage {data.order_index} is not a message")
            patient = await session.scalar(select(Patient).where(Patient.id == instance.patient_id))
            if patient is None:
                raise _invalid("the patient no longer exists")
            channel = (
                communications.preferred_channel(patient)
                if action.channel == "preferred"
                else Channel(action.channel)
            )
            try:
                appointment = (
                    await appointment_facts(session, instance.appointment_id)
                    if instance.appointment_id is not None
                    else None
                )
                variables = await communications.system_variables(session, patient, appointment)
                variables.update(action.variables)
                kept = _kept_template(instance, data, action)
                subject: str | None
                if kept is not None:
                    subject, body = kept.render(variables)
                else:
                    subject, body = communications.render_content(
                        template_id=action.template_id,
                        text=action.text,
                        subject=action.subject,
                        variables=variables,
                    )
                result = await communications.send_message(
                    session,
                    patient_id=patient.id,
                    channel=channel,
                    message=body,
                    subject=subject,
                    idempotency_key=action_idempotency_key(instance.id, data.order_index, data.action_index),
                    template_name=action.template_id,
                    appointment_id=instance.appointment_id,
                    appointment=appointment,
                    journey_instance_id=instance.id,
                    workflow_id=journey_workflow_id(instance.id),
                    template_vars=dict(action.variables),
                    template=kept,
                )
            except (TemplateError, DomainError) as exc:
                raise _invalid(str(getattr(exc, "detail", None) or exc)) from exc
            communication_id = str(result.communication.id)
            await session.commit()
            return communication_id

    async def _ticket(
        self, data: ActionInput, spec_of: Callable[[JourneyInstance], TicketSpec], key: str
    ) -> str:
        async with self.deps.tenant_session(data.tenant_id) as session:
            instance = await self._instance(session, data.instance_id)
            spec = spec_of(instance)
            result = await tickets.create_ticket(
                session,
                title=spec.title,
                description=spec.description,
                priority=spec.priority,
                category=spec.category,
                assigned_to=spec.assigned_to,
                patient_id=instance.patient_id,
                journey_instance_id=instance.id,
                idempotency_key=key,
                workflow_id=journey_workflow_id(instance.id),
            )
            ticket_id = str(result.ticket.id)
            await session.commit()
            return ticket_id

    @activity.defn(name="journey_create_ticket")
    async def create_journey_ticket(self, data: ActionInput) -> str:
        """Create a stage's ticket once (a create_ticket action, or a wait_for_reply action's timeout)."""

        def spec_of(instance: JourneyInstance) -> TicketSpec:
            action = _snapshot_action(instance, data.order_index, data.action_index)
            if action.type == "create_ticket":
                return TicketSpec.model_validate(action.model_dump(exclude={"type"}))
            if action.type == "wait_for_reply":
                return action.ticket or DEFAULT_TIMEOUT_TICKET
            raise _invalid(f"action {data.action_index} of stage {data.order_index} creates no ticket")

        key = action_idempotency_key(data.instance_id, data.order_index, data.action_index)
        return await self._ticket(data, spec_of, key)

    @activity.defn(name="journey_create_timeout_ticket")
    async def create_timeout_ticket(self, data: ActionInput) -> str:
        """Create, once, the ticket of a `reply_received` stage whose patient did not reply in time."""

        def spec_of(instance: JourneyInstance) -> TicketSpec:
            trigger = parse_trigger(_snapshot_stage(instance, data.order_index).get("trigger_event"))
            return getattr(trigger, "ticket", None) or DEFAULT_TIMEOUT_TICKET

        return await self._ticket(
            data, spec_of, reply_timeout_idempotency_key(data.instance_id, data.order_index)
        )

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [
            self.record_stage_status,
            self.record_instance_status,
            self.mark_instance_cancelled,
            self.load_appointment_time,
            self.send_journey_message,
            self.create_journey_ticket,
            self.create_timeout_ticket,
        ]
