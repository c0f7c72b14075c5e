"""The domain events of an appointment's life (`core.events`), with the facts a journey's trigger matches."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import EventType, emit
from domain.enums import AppointmentStatus
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment


async def emit_appointment_event(
    session: AsyncSession, appointment: Appointment, type: EventType, *, deleted: bool = False
) -> None:
    """Record `type` for `appointment` in the session's transaction (ids and types: no patient data).

    `deleted`: the appointment is being removed (`DELETE`) while it could still have been cancelled; the
    event is the cancellation it amounts to (status `cancelled`, fact `deleted`), so journeys and the
    dispatcher treat it as one."""
    speciality = await session.scalar(
        select(Practitioner.speciality).where(Practitioner.id == appointment.practitioner_id)
    )
    await emit(
        session,
        tenant_id=appointment.tenant_id,
        type=type,
        patient_id=appointment.patient_id,
        subject=("appointment", appointment.id),
        facts={
            "appointment_type": appointment.appointment_type,
            "practitioner_id": appointment.practitioner_id,
            "speciality": speciality,
            "location_id": appointment.location_id,
            "channel": appointment.source_channel,
            "status": AppointmentStatus.CANCELLED.value if deleted else appointment.status,
            **({"deleted": True} if deleted else {}),
        },
    )
