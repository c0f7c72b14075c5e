"""Handing a recorded message to its delivery workflow: the one road every outbound message takes.

This module starts workflows and nothing else: `service.send_message` creates the message (whoever asks:
the API, a journey, an appointment reminder, the booking chat, a consent confirmation), then this module
starts its `CommunicationDeliveryWorkflow` (id `communication-<uuid>`), which applies the send policy
(consent, quiet hours, frequency cap), sends with retries and falls back to other channels. The start
happens right after the caller's transaction commits, so a workflow never looks for a row that is not
there, and nothing starts when the transaction rolls back.

Starting is idempotent: the id derives from the message, a running workflow is reused, and a closed one is
started again (its first step finds a message already sent and does nothing). A start lost between the
commit and Temporal (Temporal down, a crash) is redone by the reconciler (`reconcile_delivery_starts`):
the workflow's first step stamps `delivery_started_at`, so rows without the stamp are the lost ones.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only
from temporalio import activity
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.database import scope_to
from core.temporal import RPC_TIMEOUT, SA_PATIENT_ID, SA_TENANT_ID, TemporalAccess, temporal_for
from domain.communications.models import Communication
from domain.communications.plan import WORKFLOW_NAME, DeliveryInput, delivery_workflow_id
from domain.enums import UNSENT_COMMUNICATION_STATUSES, Direction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    tenant_id: uuid.UUID
    communication_id: uuid.UUID
    patient_id: uuid.UUID | None


async def start_delivery(
    access: TemporalAccess,
    tenant_id: uuid.UUID,
    communication_id: uuid.UUID,
    patient_id: uuid.UUID | None = None,
) -> None:
    """Start (or reuse the running) delivery workflow of one committed message; raises when unreachable."""
    pairs: list[SearchAttributePair] = [SearchAttributePair(SA_TENANT_ID, str(tenant_id))]
    if patient_id is not None:
        pairs.append(SearchAttributePair(SA_PATIENT_ID, str(patient_id)))
    client = await access.get_client()
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            DeliveryInput(tenant_id=str(tenant_id), communication_id=str(communication_id)),
            id=delivery_workflow_id(communication_id),
            task_queue=access.task_queue,
            search_attributes=TypedSearchAttributes(pairs),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        pass  # it is running: that is all this call wanted


_PENDING_KEY = "communications_to_dispatch"
_HOOKED_KEY = "communications_dispatch_hook"
_HELD_KEY = "communications_delivered_by_caller"


def hold_starts(session: AsyncSession) -> None:
    """The caller delivers the messages `session` records itself (`delivery.send_at_once` after its commit,
    else `start_delivery`): nothing starts on commit. A journey's send activity does this, so a message
    that needs no durable wait costs no workflow; one the caller never got to is started by the
    reconciler, as a lost start is."""
    session.info[_HELD_KEY] = True


def start_after_commit(session: AsyncSession, record: Communication) -> None:
    """Start `record`'s delivery workflow right after `session` commits (nothing starts on a rollback).

    Inside an activity a failed start surfaces from the commit, so the activity is retried and starts it
    then (the record is found under its key); elsewhere (an API request) it is logged and the reconciler
    starts it later. Without any Temporal access (a CLI script) only the reconciler starts it. Nothing
    starts for a session whose caller holds the starts (`hold_starts`)."""
    if session.info.get(_HELD_KEY):
        return
    access = temporal_for(session)
    if access is None:
        log.info("no Temporal access here: message %s waits for the reconciler", record.id)
        return
    pending: list[_Pending] = session.info.setdefault(_PENDING_KEY, [])
    item = _Pending(record.tenant_id, record.id, record.patient_id)
    if item not in pending:
        pending.append(item)
    if session.info.get(_HOOKED_KEY):
        return
    session.info[_HOOKED_KEY] = True
    reraise = activity.in_activity()

    def after_commit(sync_session: Session) -> None:
        items: list[_Pending] = sync_session.info.pop(_PENDING_KEY, [])
        if items:
            await_only(_start_all(access, items, reraise=reraise))

    def after_rollback(sync_session: Session, previous: SessionTransaction) -> None:
        if not previous.nested:  # the whole transaction is gone: those rows were never stored
            sync_session.info.pop(_PENDING_KEY, None)

    event.listen(session.sync_session, "after_commit", after_commit)
    event.listen(session.sync_session, "after_soft_rollback", after_rollback)


async def _start_all(access: TemporalAccess, items: list[_Pending], *, reraise: bool) -> None:
    for item in items:
        try:
            await start_delivery(access, item.tenant_id, item.communication_id, item.patient_id)
        except Exception as exc:
            if reraise:
                raise
            log.warning(
                "could not start the delivery of message %s (%s); the reconciler will",
                item.communication_id,
                type(exc).__name__,
            )


async def reconcile_delivery_starts(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: TemporalAccess,
    *,
    older_than_seconds: float = 60.0,
    tenant_id: uuid.UUID | None = None,
    limit: int = 500,
) -> int:
    """Start the delivery workflows of unsent outbound messages whose workflow never began; how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    C = Communication
    async with sessionmaker() as session:
        scope_to(session, tenant_id)
        rows = (
            await session.execute(
                select(C.tenant_id, C.id, C.patient_id)
                .where(
                    C.delivery_started_at.is_(None),
                    C.direction == Direction.OUTBOUND.value,
                    C.status.in_([s.value for s in UNSENT_COMMUNICATION_STATUSES]),
                    C.created_at < cutoff,
                )
                .order_by(C.created_at)
                .limit(limit)
            )
        ).all()
    for row in rows:
        await start_delivery(access, row.tenant_id, row.id, row.patient_id)
        log.info("started the lost delivery workflow of message %s", row.id)
    return len(rows)
