"""Every workflow class the worker registers (imported by the worker, never by a workflow)."""

from __future__ import annotations

from workflows.appointments import AppointmentWorkflow
from workflows.booking import BookingConversationWorkflow
from workflows.campaign_schedules import CampaignOccurrenceWorkflow
from workflows.campaigns import CampaignWorkflow
from workflows.communications import CommunicationDeliveryWorkflow
from workflows.journey import JourneyInstanceWorkflow
from workflows.tickets import TicketSlaWorkflow
from workflows.waitlist import WaitlistBackfillWorkflow

ALL_WORKFLOWS: tuple[type, ...] = (
    JourneyInstanceWorkflow,
    AppointmentWorkflow,
    BookingConversationWorkflow,
    WaitlistBackfillWorkflow,
    CommunicationDeliveryWorkflow,
    TicketSlaWorkflow,
    CampaignWorkflow,
    CampaignOccurrenceWorkflow,
)
