"""Scheduling activities: reminders, cancellation notices, booking conversations and waitlist offers.

Each opens its own transaction scoped to the tenant it is given, calls the scheduling domain, and is
idempotent under retry (every message carries a business idempotency key the database holds unique).
"""

from __future__ import annotations

import uuid

from temporalio import activity

from activities import ActivityDeps, heartbeats
from domain.scheduling import backfill, booking, notifications, waitlist
from domain.scheduling.plan import (
    CancellationMessageInput,
    ConversationReplyInput,
    ConversationUpdate,
    ExpireConversationInput,
    ExpireWaitlistWaveInput,
    ReminderInput,
    WaitlistReplyInput,
    WaitlistReplyOutcome,
    WaitlistWave,
    WaitlistWaveInput,
)


class AppointmentActivities:
    """Activities of the appointment workflow, bound to the worker's dependencies."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="send_appointment_reminder")
    @heartbeats
    async def send_appointment_reminder(self, data: ReminderInput) -> bool:
        """Send one reminder (skipped when the appointment moved or is no longer active)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            sent = await notifications.send_reminder(
                session,
                appointment_id=uuid.UUID(data.appointment_id),
                offset_minutes=data.offset_minutes,
                planned_start=data.start_time,
            )
            return sent

    @activity.defn(name="send_appointment_cancellation")
    @heartbeats
    async def send_appointment_cancellation(self, data: CancellationMessageInput) -> bool:
        """Tell the patient the appointment is cancelled (once)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            sent = await notifications.send_cancellation(
                session, appointment_id=uuid.UUID(data.appointment_id)
            )
            return sent

    @activity.defn(name="expire_booking_conversation")
    @heartbeats
    async def expire_booking_conversation(self, data: ExpireConversationInput) -> ConversationUpdate:
        """Release the holds of a conversation whose offer ran out (unless it was extended or ended)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            status, expires_at = await booking.expire_conversation(
                session, uuid.UUID(data.conversation_id), data.expires_at
            )
        return ConversationUpdate(status=status, expires_at=expires_at.isoformat())

    @activity.defn(name="handle_booking_reply")
    @heartbeats
    async def handle_booking_reply(self, data: ConversationReplyInput) -> ConversationUpdate:
        """Act on the patient's routed reply: book, re-offer, or ask again."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            status, expires_at = await booking.reply_from_message(
                session,
                uuid.UUID(data.conversation_id),
                uuid.UUID(data.communication_id),
            )
        return ConversationUpdate(status=status, expires_at=expires_at.isoformat())

    @activity.defn(name="offer_waitlist_wave")
    @heartbeats
    async def offer_waitlist_wave(self, data: WaitlistWaveInput) -> WaitlistWave:
        """Offer the freed time to the next wave of the waitlist (the same wave again on retry)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            wave = await backfill.offer_wave(
                session,
                uuid.UUID(data.cancelled_appointment_id),
                data.wave,
                wave_size=data.wave_size,
                hold_minutes=data.hold_minutes,
            )
        return WaitlistWave(
            status=wave.status,
            offer_ids=[str(i) for i in wave.offer_ids],
            expires_at=wave.expires_at.isoformat() if wave.expires_at else None,
        )

    @activity.defn(name="handle_waitlist_reply")
    @heartbeats
    async def handle_waitlist_reply(self, data: WaitlistReplyInput) -> WaitlistReplyOutcome:
        """Act on a patient's routed reply to an offer: book it, pass on it, or ask again."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            status, offer_id = await waitlist.reply_from_message(
                session,
                uuid.UUID(data.cancelled_appointment_id),
                uuid.UUID(data.communication_id),
            )
        return WaitlistReplyOutcome(status=status, offer_id=str(offer_id) if offer_id else None)

    @activity.defn(name="expire_waitlist_wave")
    @heartbeats
    async def expire_waitlist_wave(self, data: ExpireWaitlistWaveInput) -> int:
        """Close the unanswered offers of a wave whose hold ran out; how many."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            expired = await backfill.expire_wave(session, uuid.UUID(data.cancelled_appointment_id), data.wave)
        return expired

    def all(self) -> list:
        """Every activity of this group, for the worker."""
        return [
            self.send_appointment_reminder,
            self.send_appointment_cancellation,
            self.expire_booking_conversation,
            self.handle_booking_reply,
            self.offer_waitlist_wave,
            self.handle_waitlist_reply,
            self.expire_waitlist_wave,
        ]
