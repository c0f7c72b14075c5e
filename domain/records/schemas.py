"""Shapes of a patient's records across the domains: the detail and 360 views, the lists, the merge."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from core.pagination import Page
from domain.communications.schemas import CommunicationResponse
from domain.enums import JourneyInstanceStatus
from domain.patients.schemas import PatientResponse
from domain.scheduling.schemas import AppointmentResponse
from domain.schemas import RequestModel, ResponseModel
from domain.tickets.schemas import TicketResponse


class PatientDetailResponse(PatientResponse):
    """A patient with the statistics of their appointments, journeys, tickets and messages."""

    total_appointments: int
    upcoming_appointments: int
    active_journeys: int
    open_tickets: int
    total_communications: int
    last_visit_date: datetime | None
    next_appointment_date: datetime | None


class JourneyInstanceSummary(ResponseModel):
    """A journey a patient is on, as the 360 view lists it."""

    id: uuid.UUID
    journey_id: uuid.UUID
    journey_name: str
    status: JourneyInstanceStatus
    current_stage_id: uuid.UUID | None
    appointment_id: uuid.UUID | None
    started_at: datetime | None
    created_at: datetime


class Patient360Response(ResponseModel):
    """Everything about a patient on one screen: demographics, recent activity and what is open."""

    patient: PatientResponse
    appointments: list[AppointmentResponse] = Field(description="The 10 latest, by start time")
    journeys: list[JourneyInstanceSummary] = Field(description="Active journey instances")
    tickets: list[TicketResponse] = Field(description="Open tickets (not resolved or closed)")
    communications: list[CommunicationResponse] = Field(description="The 10 latest messages")
    total_appointments: int
    upcoming_appointments: int
    active_journeys: int
    open_tickets: int
    recent_communications: int = Field(description="Messages in the last 30 days")
    last_visit_date: datetime | None
    next_appointment_date: datetime | None


class PatientMergeRequest(RequestModel):
    """Body of `POST /patients/merge`: the record to keep and the duplicate to fold into it."""

    primary_patient_id: uuid.UUID = Field(description="The record that survives")
    duplicate_patient_id: uuid.UUID = Field(description="The record merged into the primary and retired")


class MergedRecords(ResponseModel):
    """How many records of each kind moved from the duplicate to the primary."""

    appointments: int = 0
    communications: int = 0
    tickets: int = 0
    journey_instances: int = 0
    channel_consents: int = 0


class PatientMergeResponse(ResponseModel):
    """The outcome of a merge."""

    success: bool = True
    primary_patient_id: uuid.UUID
    merged_patient_id: uuid.UUID
    merged_at: datetime
    moved: MergedRecords


class PatientAppointmentListResponse(Page[AppointmentResponse]):
    """A page of one patient's appointments."""


class PatientConversationListResponse(Page[CommunicationResponse]):
    """A page of one patient's messages, newest first."""
