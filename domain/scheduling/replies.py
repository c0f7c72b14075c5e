"""Where a patient's inbound reply goes in scheduling: the newest of their open waitlist offer and their
active booking conversation, whose workflow gets it (signals recorded with the stored message)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.scheduling import backfill, workflow_jobs
from domain.scheduling.models import BookingConversation
from domain.scheduling.plan import SIGNAL_INBOUND_REPLY, WaitlistReplySignal


async def route_inbound_reply(
    session: AsyncSession, *, patient_id: uuid.UUID, communication_id: uuid.UUID
) -> uuid.UUID | None:
    """Route a patient's inbound message (already stored) to the workflow waiting for the patient's answer.

    That is the newest of their open waitlist offer (its backfill workflow) and their active booking
    conversation. The communications webhook calls this; the workflow reads the text through an activity
    (no message body ever travels in a workflow payload). Returns the offer's or the conversation's id, or
    None when nothing awaits a reply.
    """
    offer = await backfill.pending_offer_of(session, patient_id)
    conversation = (
        await session.scalars(
            select(BookingConversation)
            .where(BookingConversation.patient_id == patient_id, BookingConversation.status == "active")
            .order_by(BookingConversation.created_at.desc())
            .limit(1)
        )
    ).first()
    if offer is not None and (conversation is None or offer.created_at >= conversation.created_at):
        workflow_jobs.signal_waitlist_backfill(
            session,
            offer.cancelled_appointment_id,
            SIGNAL_INBOUND_REPLY,
            WaitlistReplySignal(communication_id=str(communication_id)),
        )
        return offer.id
    if conversation is None:
        return None
    workflow_jobs.signal_inbound_reply(session, conversation, communication_id)
    return conversation.id
