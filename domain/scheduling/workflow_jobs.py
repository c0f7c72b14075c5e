"""Starting and signalling the scheduling workflows, always as workflow commands.

Every start (an appointment's reminders, a booking conversation, the waitlist backfill of a freed time) and
every signal (a reschedule, a cancellation, a reply) is recorded in the change's own transaction
(`core.workflow_commands`) and delivered after the commit, at once when Temporal answers and by the relay
otherwise: an outage delays them and never loses them. Workflow ids derive from row ids
(`appointment-<uuid>`, ...), so a repeated start is harmless.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.gateway import StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import record_signal, record_start
from domain.scheduling.models import Appointment
from domain.scheduling.plan import (
    APPOINTMENT_WORKFLOW,
    CONVERSATION_WORKFLOW,
    SIGNAL_CANCEL,
    SIGNAL_CONVERSATION_UPDATED,
    SIGNAL_FINISH,
    SIGNAL_INBOUND_REPLY,
    SIGNAL_RESCHEDULE,
    WAITLIST_WORKFLOW,
    AppointmentWorkflowInput,
    CancelSignal,
    ConversationInput,
    ConversationUpdate,
    FinishSignal,
    InboundReply,
    RescheduleSignal,
    WaitlistBackfillInput,
    appointment_workflow_id,
    waitlist_backfill_workflow_id,
)
from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantSettings
from domain.tenants.service import settings_of


async def appointment_input(session: AsyncSession, appointment: Appointment) -> AppointmentWorkflowInput:
    """The workflow input for an appointment as it stands: ids, times and the tenant's reminder offsets."""
    tenant = await session.get(Tenant, appointment.tenant_id)
    offsets = (settings_of(tenant) if tenant is not None else TenantSettings()).reminder_offsets_minutes
    return AppointmentWorkflowInput(
        tenant_id=str(appointment.tenant_id),
        appointment_id=str(appointment.id),
        start_time=appointment.start_time.isoformat(),
        end_time=appointment.end_time.isoformat(),
        reminder_offsets_minutes=list(offsets),
    )


def _appointment_start(wf_input: AppointmentWorkflowInput, patient_id: uuid.UUID) -> WorkflowStart:
    return WorkflowStart(
        workflow=APPOINTMENT_WORKFLOW,
        workflow_id=appointment_workflow_id(uuid.UUID(wf_input.appointment_id)),
        input=wf_input,
        search_attributes=ids_of(wf_input.tenant_id, patient_id),
    )


async def start_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """Record, with the booking, the start of the appointment's reminder workflow (one per appointment)."""
    wf_input = await appointment_input(session, appointment)
    record_start(session, _appointment_start(wf_input, appointment.patient_id))


async def reschedule_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """Record, with the reschedule, the signal that moves the workflow's pending reminders (it starts the
    workflow if it is not running)."""
    wf_input = await appointment_input(session, appointment)
    record_signal(
        session,
        workflow_id=appointment_workflow_id(appointment.id),
        signal=SIGNAL_RESCHEDULE,
        arg=RescheduleSignal(start_time=wf_input.start_time, end_time=wf_input.end_time),
        start=_appointment_start(wf_input, appointment.patient_id),
    )


async def cancel_appointment_workflow(
    session: AsyncSession, appointment: Appointment, *, notify_patient: bool
) -> None:
    """Record, with the cancellation, the signal that stops the reminders and (with `notify_patient`)
    sends one cancellation message."""
    wf_input = await appointment_input(session, appointment)
    record_signal(
        session,
        workflow_id=appointment_workflow_id(appointment.id),
        signal=SIGNAL_CANCEL,
        arg=CancelSignal(notify_patient=notify_patient),
        start=_appointment_start(wf_input, appointment.patient_id),
    )


def finish_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """Record the signal that ends the workflow of a completed, no-show or deleted appointment."""
    record_signal(
        session,
        workflow_id=appointment_workflow_id(appointment.id),
        signal=SIGNAL_FINISH,
        arg=FinishSignal(status=appointment.status),
    )


def start_conversation_workflow(session: AsyncSession, conversation: Any) -> None:
    """Record, with the conversation, the start of its workflow: it releases the holds when the offer
    expires."""
    wf_input = ConversationInput(
        tenant_id=str(conversation.tenant_id),
        conversation_id=str(conversation.id),
        expires_at=conversation.expires_at.isoformat(),
    )
    record_start(
        session,
        WorkflowStart(
            workflow=CONVERSATION_WORKFLOW,
            workflow_id=conversation.workflow_id,
            input=wf_input,
            search_attributes=ids_of(conversation.tenant_id, conversation.patient_id),
        ),
    )


def signal_conversation(session: AsyncSession, conversation: Any) -> None:
    """Record the signal that tells the conversation's workflow its new status and expiry."""
    record_signal(
        session,
        workflow_id=conversation.workflow_id,
        signal=SIGNAL_CONVERSATION_UPDATED,
        arg=ConversationUpdate(status=conversation.status, expires_at=conversation.expires_at.isoformat()),
    )


def signal_inbound_reply(session: AsyncSession, conversation: Any, communication_id: uuid.UUID) -> None:
    """Record the signal that hands the stored inbound message (by id, never its text) to the conversation."""
    record_signal(
        session,
        workflow_id=conversation.workflow_id,
        signal=SIGNAL_INBOUND_REPLY,
        arg=InboundReply(communication_id=str(communication_id)),
    )


def start_waitlist_backfill(session: AsyncSession, wf_input: WaitlistBackfillInput) -> None:
    """Record, with the cancellation that freed the time, the start of its backfill: at most once, ever (a
    freed time is offered once)."""
    record_start(
        session,
        WorkflowStart(
            workflow=WAITLIST_WORKFLOW,
            workflow_id=waitlist_backfill_workflow_id(uuid.UUID(wf_input.cancelled_appointment_id)),
            input=wf_input,
            search_attributes=ids_of(wf_input.tenant_id),
            policy=StartPolicy.ONCE,
        ),
    )


def signal_waitlist_backfill(
    session: AsyncSession, cancelled_appointment_id: uuid.UUID, signal: str, arg: Any
) -> None:
    """Record a signal to the backfill of a cancelled appointment (ids only; dropped if it ended)."""
    record_signal(
        session, workflow_id=waitlist_backfill_workflow_id(cancelled_appointment_id), signal=signal, arg=arg
    )
