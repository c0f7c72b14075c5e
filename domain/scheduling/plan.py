"""What the scheduling workflows and their callers exchange: ids, times and statuses, never PHI.

Pure dataclasses and names (the workflows import this module, and so do the domain services that start and
signal them and the activities that serve them), so the domain never imports a workflow or an activity.
The appointment workflow (`appointment-<id>`), the booking conversation (`booking-conversation-<id>`) and
the waitlist backfill (`waitlist-backfill-<cancelled appointment id>`) keep their contracts here.
"""

# No `from __future__ import annotations`: payloads are decoded faster (see domain/journeys/plan.py).

import uuid
from dataclasses import dataclass, field

APPOINTMENT_WORKFLOW = "AppointmentWorkflow"
CONVERSATION_WORKFLOW = "BookingConversationWorkflow"
WAITLIST_WORKFLOW = "WaitlistBackfillWorkflow"

# Signal names (the workflows' handlers and the domain's commands both use these).
SIGNAL_RESCHEDULE = "reschedule"  # appointment: new times
SIGNAL_CANCEL = "cancel"  # appointment: cancelled (and whether to tell the patient)
SIGNAL_FINISH = "finish"  # appointment: completed, no-show or deleted
SIGNAL_CONVERSATION_UPDATED = "updated"  # booking conversation: new status and expiry
SIGNAL_INBOUND_REPLY = "inbound_reply"  # conversation or waitlist backfill: a patient's stored reply
SIGNAL_OFFER_SETTLED = "offer_settled"  # waitlist backfill: an offer was taken, declined or withdrawn


# ---- the appointment workflow ----


def appointment_workflow_id(appointment_id: uuid.UUID) -> str:
    """`appointment-<uuid>`: exactly one workflow per appointment."""
    return f"appointment-{appointment_id}"


@dataclass
class AppointmentWorkflowInput:
    """Ids and times only (no PHI): the appointment as it stood when the workflow (re)started."""

    tenant_id: str
    appointment_id: str
    start_time: str
    end_time: str
    # Always given (the tenant's settings hold the default); empty only in a payload that lacks it.
    reminder_offsets_minutes: list[int] = field(default_factory=list)


@dataclass
class RescheduleSignal:
    """The appointment's new time."""

    start_time: str
    end_time: str


@dataclass
class CancelSignal:
    """The appointment was cancelled; tell the patient or not."""

    notify_patient: bool = True


@dataclass
class FinishSignal:
    """The appointment reached a final status (completed, no_show) or was deleted."""

    status: str


@dataclass
class AppointmentWorkflowState:
    """What the workflow is waiting for (a query, for operators and tests)."""

    start_time: str
    sent_reminder_keys: list[str]
    next_reminder_at: str | None
    failed: list[str] = field(default_factory=list)  # `<offset>:<start>: <reason>` of reminders that failed


# ---- the booking conversation ----


@dataclass
class ConversationInput:
    """Ids and the offer's expiry only (no PHI)."""

    tenant_id: str
    conversation_id: str
    expires_at: str


@dataclass
class InboundReply:
    """A stored inbound message for this conversation (its id: the text stays in the database)."""

    communication_id: str


# ---- the waitlist backfill ----


def waitlist_backfill_workflow_id(cancelled_appointment_id: uuid.UUID) -> str:
    """`waitlist-backfill-<uuid>`: one backfill per cancelled appointment (the freed time)."""
    return f"waitlist-backfill-{cancelled_appointment_id}"


@dataclass
class WaitlistBackfillInput:
    """The freed time (the cancelled appointment's id) and the tenant's wave size and hold; no PHI."""

    tenant_id: str
    cancelled_appointment_id: str
    wave_size: int  # the tenant's settings (`waitlist`) hold the defaults
    hold_minutes: int


@dataclass
class WaitlistReplySignal:
    """A stored inbound message from a patient holding an offer (its id: the text stays in the database)."""

    communication_id: str


@dataclass
class OfferSettledSignal:
    """An offer was answered elsewhere (the accept/decline API, or its entry was removed)."""

    offer_id: str
    status: str  # accepted | declined | taken


# ---- the activities' inputs and results ----


@dataclass
class ReminderInput:
    """Which reminder of which appointment, for the appointment time it was planned against."""

    tenant_id: str
    appointment_id: str
    offset_minutes: int
    start_time: str


@dataclass
class CancellationMessageInput:
    """The appointment whose cancellation the patient is told about."""

    tenant_id: str
    appointment_id: str


@dataclass
class ConversationUpdate:
    """A booking conversation's status and offer expiry."""

    status: str
    expires_at: str


@dataclass
class ExpireConversationInput:
    """The conversation whose offer ran out, and the expiry the workflow waited for."""

    tenant_id: str
    conversation_id: str
    expires_at: str


@dataclass
class ConversationReplyInput:
    """A stored inbound message to handle as the conversation's reply."""

    tenant_id: str
    conversation_id: str
    communication_id: str


@dataclass
class WaitlistWaveInput:
    """Which wave of which freed time to offer, to how many patients, held for how long."""

    tenant_id: str
    cancelled_appointment_id: str
    wave: int
    wave_size: int
    hold_minutes: int


@dataclass
class WaitlistWave:
    """`offered` (with the offer ids and hold expiry), or why not: exhausted, slot_gone, booked, closed."""

    status: str
    offer_ids: list[str]
    expires_at: str | None = None


@dataclass
class WaitlistReplyInput:
    """A stored inbound message to handle as a reply to the patient's offer of this freed time."""

    tenant_id: str
    cancelled_appointment_id: str
    communication_id: str


@dataclass
class WaitlistReplyOutcome:
    """The offer the reply concerned and its status now (accepted, taken, declined, expired, ...)."""

    status: str
    offer_id: str | None = None


@dataclass
class ExpireWaitlistWaveInput:
    """The wave whose hold ran out."""

    tenant_id: str
    cancelled_appointment_id: str
    wave: int
