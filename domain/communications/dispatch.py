"""Handing a recorded message to its delivery workflow: the one road every outbound message takes.

`service.send_message` creates the message (whoever asks: the API, a journey, an appointment reminder, the
booking chat, a consent confirmation) and records, in the same transaction, the start of its
`CommunicationDeliveryWorkflow` (id `communication-<uuid>`) as a workflow command (`core.workflow_commands`):
delivered after the commit, at once when Temporal answers and by the relay otherwise, so a workflow never
looks for a row that is not there, nothing starts when the transaction rolls back, and no start is lost
between the commit and Temporal. The workflow applies the send policy (consent, quiet hours, frequency cap),
sends with retries and falls back to other channels. A closed workflow may be started again: its first step
finds a message already sent and does nothing.

A journey's send step delivers its message itself when nothing needs waiting for (`delivery.send_at_once`):
it holds the start (`hold_starts`), and the send step settles it in the transaction that records the
message sent (`settle`) or releases it in the one that finds the message needs its workflow (`release`).
A worker killed in between leaves the held start to the relay, which delivers it when its hold ends.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.gateway import StartPolicy, WorkflowStart, ids_of
from core.workflow_commands import record_start, release_held, settle_held
from domain.communications.models import Communication
from domain.communications.plan import WORKFLOW_NAME, DeliveryInput, delivery_workflow_id

# How long a held delivery start waits for the send step that holds it (which settles or releases it in
# seconds): past it, the relay starts the workflow, whose steps send at most once whoever got there first.
HOLD = timedelta(seconds=60)

_HELD_KEY = "communications_delivered_by_caller"

__all__ = ["delivery_workflow_id", "hold_starts", "record_delivery_start", "release", "settle"]


def hold_starts(session: AsyncSession) -> None:
    """The caller delivers the messages `session` records itself, so their delivery starts are held: no
    workflow for a message that needs no durable wait."""
    session.info[_HELD_KEY] = True


def record_delivery_start(session: AsyncSession, record: Communication) -> None:
    """Record, with the message, the start of its delivery workflow (held when the caller said so)."""
    record_start(
        session,
        WorkflowStart(
            workflow=WORKFLOW_NAME,
            workflow_id=delivery_workflow_id(record.id),
            input=DeliveryInput(tenant_id=str(record.tenant_id), communication_id=str(record.id)),
            search_attributes=ids_of(record.tenant_id, record.patient_id),
            policy=StartPolicy.REUSE,
        ),
        tenant_id=record.tenant_id,
        hold_for=HOLD if session.info.get(_HELD_KEY) else None,
    )


async def settle(session: AsyncSession, communication_id: uuid.UUID) -> None:
    """The held delivery start of a message its caller delivered is not needed any more."""
    await settle_held(session, delivery_workflow_id(communication_id))


async def release(session: AsyncSession, communication_id: uuid.UUID) -> None:
    """A held delivery start is needed now (a wait, a fallback to watch, a retry): delivered after the
    commit."""
    await release_held(session, delivery_workflow_id(communication_id))
