"""Starting and signalling the scheduling workflows.

Starts happen after the request's commit: workflow ids derive from row ids (`appointment-<uuid>`, ...), so a
repeated start is harmless, and a start lost between commit and Temporal is found again by
`start_missing_appointment_workflows`. Signals (a reschedule, a cancellation, a reply) are recorded in the
change's own transaction as workflow commands (`core.workflow_commands`) and delivered until Temporal has
them, so an outage delays them and never loses them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.database import after_commit, scope_to
from core.temporal import RPC_TIMEOUT, SA_PATIENT_ID, SA_TENANT_ID, TemporalAccess, temporal_for
from core.workflow_commands import StartIfMissing, record_signal
from domain.enums import ACTIVE_APPOINTMENT_STATUSES
from domain.scheduling.models import Appointment
from domain.scheduling.plan import (
    APPOINTMENT_WORKFLOW,
    CONVERSATION_WORKFLOW,
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

log = logging.getLogger(__name__)


def _search_attributes(tenant_id: uuid.UUID, patient_id: uuid.UUID) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_TENANT_ID, str(tenant_id)),
            SearchAttributePair(SA_PATIENT_ID, str(patient_id)),
        ]
    )


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


async def _start_workflow(
    access: TemporalAccess, workflow: str, wf_input: Any, workflow_id: str, **options: Any
) -> None:
    """Start `workflow` as `workflow_id` (a running one is left alone); raises if Temporal is unreachable."""
    client = await access.get_client()
    try:
        await client.start_workflow(
            workflow,
            wf_input,
            id=workflow_id,
            task_queue=access.task_queue,
            rpc_timeout=RPC_TIMEOUT,
            **options,
        )
    except WorkflowAlreadyStartedError:
        pass


async def _start(access: TemporalAccess, wf_input: AppointmentWorkflowInput, patient_id: uuid.UUID) -> None:
    """Start the appointment's workflow; raises when Temporal is unreachable."""
    await _start_workflow(
        access,
        APPOINTMENT_WORKFLOW,
        wf_input,
        appointment_workflow_id(uuid.UUID(wf_input.appointment_id)),
        search_attributes=_search_attributes(uuid.UUID(wf_input.tenant_id), patient_id),
    )


def _mark_started(appointment_id: uuid.UUID) -> Any:
    return (
        update(Appointment)
        .where(Appointment.id == appointment_id)
        .values(workflow_started_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )


def _start_after_commit(
    session: AsyncSession,
    what: str,
    start: Callable[[TemporalAccess], Awaitable[None]],
    then: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """After the commit, `start` through the session's Temporal access, then `then`; when there is no
    access or Temporal is unreachable, log it and leave `what` to the reconciler."""

    async def job() -> None:
        access = temporal_for(session)
        if access is None:
            log.info("no Temporal here: %s left for the reconciler", what)
            return
        try:
            await start(access)
        except Exception as exc:
            log.warning("Temporal unreachable (%s): %s left for the reconciler", type(exc).__name__, what)
            return
        if then is not None:
            await then()

    after_commit(session, job)


async def start_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """After the commit, start the appointment's reminder workflow (one per appointment) and stamp it."""
    wf_input = await appointment_input(session, appointment)
    appointment_id, patient_id = appointment.id, appointment.patient_id

    async def stamp() -> None:
        try:  # a new short transaction on the committed session
            await session.execute(_mark_started(appointment_id))
            await session.commit()
        except Exception:
            await session.rollback()
            raise

    _start_after_commit(
        session,
        f"appointment workflow {appointment_id}",
        lambda access: _start(access, wf_input, patient_id),
        then=stamp,
    )


def _start_if_missing(wf_input: AppointmentWorkflowInput, patient_id: uuid.UUID) -> StartIfMissing:
    return StartIfMissing(
        workflow=APPOINTMENT_WORKFLOW,
        input=wf_input,
        search_attributes={SA_TENANT_ID.name: wf_input.tenant_id, SA_PATIENT_ID.name: str(patient_id)},
    )


async def reschedule_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """Record, with the reschedule, the signal that moves the workflow's pending reminders (delivered
    after the commit, and again until Temporal has it; it starts the workflow if its start was lost)."""
    wf_input = await appointment_input(session, appointment)
    record_signal(
        session,
        workflow_id=appointment_workflow_id(appointment.id),
        signal="reschedule",
        arg=RescheduleSignal(start_time=wf_input.start_time, end_time=wf_input.end_time),
        start=_start_if_missing(wf_input, appointment.patient_id),
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
        signal="cancel",
        arg=CancelSignal(notify_patient=notify_patient),
        start=_start_if_missing(wf_input, appointment.patient_id),
    )


def finish_appointment_workflow(session: AsyncSession, appointment: Appointment) -> None:
    """Record the signal that ends the workflow of a completed, no-show or deleted appointment."""
    record_signal(
        session,
        workflow_id=appointment_workflow_id(appointment.id),
        signal="finish",
        arg=FinishSignal(status=appointment.status),
    )


async def start_missing_appointment_workflows(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: TemporalAccess,
    *,
    older_than: timedelta,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Start the workflows of active, future appointments whose start was lost; returns how many.

    Scans every tenant unless `tenant_id` is given. Harmless to repeat: a running workflow is left alone.
    Raises when Temporal is unreachable (the next round tries again)."""
    cutoff = datetime.now(UTC) - older_than
    async with sessionmaker() as session:
        scope_to(session, tenant_id)
        rows = (
            await session.scalars(
                select(Appointment).where(
                    Appointment.workflow_started_at.is_(None),
                    Appointment.status.in_([s.value for s in ACTIVE_APPOINTMENT_STATUSES]),
                    Appointment.end_time > datetime.now(UTC),
                    Appointment.created_at < cutoff,
                )
            )
        ).all()
        started = 0
        for appointment in rows:
            await _start(access, await appointment_input(session, appointment), appointment.patient_id)
            await session.execute(_mark_started(appointment.id))
            await session.commit()
            started += 1
    return started


def start_conversation_workflow(session: AsyncSession, conversation: Any) -> None:
    """After the commit, start the conversation's workflow: it releases the holds when the offer expires
    (a lost start leaves the holds to their own expiry time)."""
    wf_input = ConversationInput(
        tenant_id=str(conversation.tenant_id),
        conversation_id=str(conversation.id),
        expires_at=conversation.expires_at.isoformat(),
    )

    _start_after_commit(
        session,
        f"conversation workflow {conversation.id}",
        lambda access: _start_workflow(access, CONVERSATION_WORKFLOW, wf_input, conversation.workflow_id),
    )


def signal_conversation(session: AsyncSession, conversation: Any) -> None:
    """Record the signal that tells the conversation's workflow its new status and expiry."""
    record_signal(
        session,
        workflow_id=conversation.workflow_id,
        signal="updated",
        arg=ConversationUpdate(status=conversation.status, expires_at=conversation.expires_at.isoformat()),
    )


def signal_inbound_reply(session: AsyncSession, conversation: Any, communication_id: uuid.UUID) -> None:
    """Record the signal that hands the stored inbound message (by id, never its text) to the conversation."""
    record_signal(
        session,
        workflow_id=conversation.workflow_id,
        signal="inbound_reply",
        arg=InboundReply(communication_id=str(communication_id)),
    )


def start_waitlist_backfill(session: AsyncSession, wf_input: WaitlistBackfillInput) -> None:
    """After the commit, start the backfill of a cancelled appointment's time (at most once, ever)."""
    workflow_id = waitlist_backfill_workflow_id(uuid.UUID(wf_input.cancelled_appointment_id))

    _start_after_commit(
        session,
        f"waitlist backfill {workflow_id}",
        # A freed time is offered once: a repeated start after the backfill ended is refused.
        lambda access: _start_workflow(
            access,
            WAITLIST_WORKFLOW,
            wf_input,
            workflow_id,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        ),
    )


def signal_waitlist_backfill(
    session: AsyncSession, cancelled_appointment_id: uuid.UUID, signal: str, arg: Any
) -> None:
    """Record a signal to the backfill of a cancelled appointment (ids only; dropped if it ended)."""
    record_signal(
        session, workflow_id=waitlist_backfill_workflow_id(cancelled_appointment_id), signal=signal, arg=arg
    )
