"""Imports every model so `Base.metadata` knows all tables (Alembic and tests read it from here)."""

from core.audit import AuditRecord
from core.database import Base
from core.events import DomainEvent
from core.workflow_commands import WorkflowCommand
from domain.analytics.models import MessageSentiment, VoiceCall
from domain.campaigns.models import Campaign, CampaignMember
from domain.cohorts.models import Cohort
from domain.communications.models import Communication
from domain.fhir.history import FhirResourceVersion
from domain.hl7.models import Hl7Message
from domain.integrations.models import IntegrationClient, IntegrationClientSecret
from domain.journeys.models import (
    Journey,
    JourneyInstance,
    JourneyInstanceStage,
    JourneyStage,
    JourneyTriggerStart,
)
from domain.patients.models import ChannelConsent, Patient, PatientIdentifier
from domain.practitioners.models import Practitioner, PractitionerIdentifier
from domain.scheduling.models import Appointment, AppointmentIdentifier, Location, TimeSlot
from domain.tenants.models import Tenant
from domain.tickets.models import Ticket, TicketEvent

__all__ = [
    "Appointment",
    "AppointmentIdentifier",
    "AuditRecord",
    "Base",
    "Campaign",
    "CampaignMember",
    "ChannelConsent",
    "Cohort",
    "Communication",
    "DomainEvent",
    "FhirResourceVersion",
    "Hl7Message",
    "IntegrationClient",
    "IntegrationClientSecret",
    "Journey",
    "JourneyInstance",
    "JourneyInstanceStage",
    "JourneyStage",
    "JourneyTriggerStart",
    "Location",
    "MessageSentiment",
    "Patient",
    "PatientIdentifier",
    "Practitioner",
    "PractitionerIdentifier",
    "Tenant",
    "Ticket",
    "TicketEvent",
    "TimeSlot",
    "VoiceCall",
    "WorkflowCommand",
]
