"""The 360 view of a patient: demographics, statistics, and the latest and open records of every domain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.communications.models import Communication
from domain.journeys.models import JourneyInstance
from domain.patients.models import Patient
from domain.patients.repository import PatientRepository
from domain.records.repository import PatientRecordRepository, PatientStatistics
from domain.records.schemas import JourneyInstanceSummary
from domain.scheduling.models import Appointment
from domain.tickets.models import Ticket

SUMMARY_FIELDS = [name for name in JourneyInstanceSummary.model_fields if name != "journey_name"]


@dataclass(frozen=True)
class PatientOverview:
    """A patient with everything the 360 view shows."""

    patient: Patient
    statistics: PatientStatistics
    appointments: list[Appointment]
    journeys: list[JourneyInstanceSummary]
    tickets: list[Ticket]
    communications: list[Communication]


async def patient_overview(
    patients: PatientRepository, records: PatientRecordRepository, patient_id: uuid.UUID
) -> PatientOverview:
    """The 360 view's data: demographics, statistics and the latest and open records (seven queries)."""
    patient = await patients.get_or_404(patient_id)
    return PatientOverview(
        patient=patient,
        statistics=await records.statistics(patient.id),
        appointments=await records.latest_appointments(patient.id),
        journeys=[
            journey_summary(instance, journey_name)
            for instance, journey_name in await records.active_journeys(patient.id)
        ],
        tickets=await records.open_tickets(patient.id),
        communications=await records.latest_communications(patient.id),
    )


def journey_summary(instance: JourneyInstance, journey_name: str) -> JourneyInstanceSummary:
    """A journey instance as the 360 view lists it, with its journey's name."""
    return JourneyInstanceSummary.model_validate(
        {**{name: getattr(instance, name) for name in SUMMARY_FIELDS}, "journey_name": journey_name}
    )
