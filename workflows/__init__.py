"""Temporal workflows: deterministic decisions over dataclass inputs of ids; no I/O, no PHI."""

from __future__ import annotations

from workflows.appointments import AppointmentWorkflow
from workflows.booking import BookingConversationWorkflow
from workflows.communications import CommunicationDeliveryWorkflow
from workflows.journey import JourneyInstanceWorkflow
from workflows.reconcile import ReconcilerWorkflow
from workflows.tickets import TicketSlaWorkflow
from workflows.waitlist import WaitlistBackfillWorkflow

# Every workflow class the worker registers. Filled in by the domains that define workflows.
ALL_WORKFLOWS: list[type] = [
    JourneyInstanceWorkflow,
    AppointmentWorkflow,
    BookingConversationWorkflow,
    WaitlistBackfillWorkflow,
    ReconcilerWorkflow,
    CommunicationDeliveryWorkflow,
    TicketSlaWorkflow,
]
