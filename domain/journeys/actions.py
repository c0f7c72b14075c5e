"""What a journey stage's actions do: send its message, create its ticket, read its appointment's time.

Everything is read from the instance's `definition_snapshot` (tenant templates included, as they were when
the instance was created), so no message text ever passes through Temporal, and every message and ticket
carries the key `journey:{instance}:{order_index}:{action_index}` that the database holds unique per
tenant, so doing an action twice records it once. The journey activities call these and nothing else;
an `InvalidJourneyAction` is final (a retry would meet the same snapshot).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError, Unprocessable
from domain.communications import service as communications
from domain.communications import templates
from domain.communications.templates import MessageTemplate, TemplateError
from domain.enums import AppointmentStatus, Channel, JourneyInstanceStatus
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


class InvalidJourneyAction(Unprocessable):
    """The instance's snapshot cannot do what the workflow asks (a missing stage, a bad template, a
    patient who cannot be reached on the channel): final, never retried."""


async def instance_of(session: AsyncSession, instance_id: uuid.UUID) -> JourneyInstance:
    """The instance, or InvalidJourneyAction when it does not exist."""
    instance = await JourneyInstanceRepository(session).get(instance_id)
    if instance is None:
        raise InvalidJourneyAction("the journey instance does not exist")
    return instance


def snapshot_stage(instance: JourneyInstance, order_index: int) -> dict[str, Any]:
    """The stage as the instance's snapshot holds it."""
    for stage in instance.definition_snapshot.get("stages", []):
        if stage["order_index"] == order_index:
            return stage
    raise InvalidJourneyAction(f"stage {order_index} is not in the instance's definition")


def snapshot_action(instance: JourneyInstance, order_index: int, action_index: int) -> Any:
    """One action of a stage, parsed from the snapshot."""
    actions = parse_actions(snapshot_stage(instance, order_index).get("actions"))
    if not 0 <= action_index < len(actions):
        raise InvalidJourneyAction(f"stage {order_index} has no action {action_index}")
    return actions[action_index]


def kept_template(
    instance: JourneyInstance, order_index: int, action_index: int, action: Any
) -> list[MessageTemplate] | None:
    """The tenant template a message action names, every language of it, from the copy kept in the
    instance's snapshot (the text it had when the instance was created); None for a built-in template or
    literal text."""
    template_id = tenant_template_id(action)
    if template_id is None:
        return None
    kept = (instance.definition_snapshot.get("templates") or {}).get(template_id)
    if kept is None:  # e.g. an instance created before its snapshot kept tenant templates
        raise InvalidJourneyAction(
            f"action {action_index} of stage {order_index} names template {template_id!r}, "
            "which is neither built-in nor kept in the instance's definition"
        )
    return templates.from_snapshot(template_id, kept)


async def appointment_time(session: AsyncSession, instance_id: uuid.UUID) -> datetime | None:
    """The start time of the instance's appointment; None without one or once it is cancelled."""
    instance = await instance_of(session, instance_id)
    if instance.appointment_id is None:
        return None
    appointment = await session.scalar(select(Appointment).where(Appointment.id == instance.appointment_id))
    if appointment is None or appointment.status == AppointmentStatus.CANCELLED.value:
        return None
    return appointment.start_time


async def send_stage_message(
    session: AsyncSession, instance_id: uuid.UUID, order_index: int, action_index: int
) -> communications.SendResult | None:
    """Render and record a stage's message once (the send gate delivers it): the message and whether this
    call recorded it, None once the journey stopped. Flushes, never commits."""
    instance = await instance_of(session, instance_id)
    if instance.status != JourneyInstanceStatus.ACTIVE.value:
        return None
    action = snapshot_action(instance, order_index, action_index)
    if action.type not in ("send_message", "schedule_reminder"):
        raise InvalidJourneyAction(f"action {action_index} of stage {order_index} is not a message")
    patient = await session.scalar(select(Patient).where(Patient.id == instance.patient_id))
    if patient is None:
        raise InvalidJourneyAction("the patient no longer exists")
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
        kept = kept_template(instance, order_index, action_index, action)

        async def compose(patient: Patient) -> communications.Content:
            # The one render path: the patient's language, else the tenant's default, else English.
            return await communications.render_for(
                session,
                patient,
                template_id=action.template_id,
                variants=kept,
                text=action.text,
                subject=action.subject,
                variables=dict(action.variables),
                appointment=appointment,
            )

        result = await communications.send_message(
            session,
            patient_id=patient.id,
            channel=channel,
            message=compose,
            idempotency_key=action_idempotency_key(instance.id, order_index, action_index),
            template_name=action.template_id,
            appointment_id=instance.appointment_id,
            appointment=appointment,
            journey_instance_id=instance.id,
            workflow_id=journey_workflow_id(instance.id),
            template_vars=dict(action.variables),
        )
    except InvalidJourneyAction:
        raise
    except (TemplateError, DomainError) as exc:
        raise InvalidJourneyAction(str(getattr(exc, "detail", None) or exc)) from exc
    return result


async def _create_ticket(
    session: AsyncSession, instance_id: uuid.UUID, spec_of: Callable[[JourneyInstance], TicketSpec], key: str
) -> uuid.UUID:
    instance = await instance_of(session, instance_id)
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
    return result.ticket.id


async def create_stage_ticket(
    session: AsyncSession, instance_id: uuid.UUID, order_index: int, action_index: int
) -> uuid.UUID:
    """Create a stage's ticket once (a create_ticket action, or a wait_for_reply action's timeout)."""

    def spec_of(instance: JourneyInstance) -> TicketSpec:
        action = snapshot_action(instance, order_index, action_index)
        if action.type == "create_ticket":
            return TicketSpec.model_validate(action.model_dump(exclude={"type"}))
        if action.type == "wait_for_reply":
            return action.ticket or DEFAULT_TIMEOUT_TICKET
        raise InvalidJourneyAction(f"action {action_index} of stage {order_index} creates no ticket")

    return await _create_ticket(
        session, instance_id, spec_of, action_idempotency_key(instance_id, order_index, action_index)
    )


async def create_timeout_ticket(session: AsyncSession, instance_id: uuid.UUID, order_index: int) -> uuid.UUID:
    """Create, once, the ticket of a `reply_received` stage whose patient did not reply in time."""

    def spec_of(instance: JourneyInstance) -> TicketSpec:
        trigger = parse_trigger(snapshot_stage(instance, order_index).get("trigger_event"))
        return getattr(trigger, "ticket", None) or DEFAULT_TIMEOUT_TICKET

    return await _create_ticket(
        session, instance_id, spec_of, reply_timeout_idempotency_key(instance_id, order_index)
    )
