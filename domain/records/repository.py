"""Queries over what a patient owns in the other domains (tenant-scoped by the session): appointments,
messages, journey instances, tickets, booking chats and waitlist rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from core.database import prebuilt
from core.events import DomainEvent
from domain.communications.models import Communication
from domain.enums import (
    ACTIVE_APPOINTMENT_STATUSES,
    AppointmentStatus,
    Channel,
    Direction,
    JourneyInstanceStatus,
    TicketStatus,
)
from domain.journeys.models import Journey, JourneyInstance
from domain.scheduling.models import Appointment, BookingConversation, WaitlistEntry, WaitlistOffer
from domain.tickets.models import Ticket

VISIT_STATUSES = (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED)
OPEN_TICKET_STATUSES = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING_ON_PATIENT)
RECENT_COMMUNICATIONS_DAYS = 30
# Records a patient owns that a merge moves to the surviving record. None of them has a unique constraint
# involving patient_id, so re-pointing never clashes (slot holds belong to conversations, not patients).
# Trigger starts do have such constraints: `domain.journeys.trigger_merge` moves them.
OWNED_RECORDS: dict[str, Any] = {
    # What happened to the duplicate is the survivor's history; undispatched events start the survivor's
    # journeys (a merged record's would be skipped: it is no longer active).
    "domain_events": DomainEvent,
    "appointments": Appointment,
    "communications": Communication,
    "tickets": Ticket,
    "journey_instances": JourneyInstance,
    "booking_conversations": BookingConversation,
    "waitlist_entries": WaitlistEntry,
    "waitlist_offers": WaitlistOffer,
}


@dataclass(frozen=True)
class PatientStatistics:
    """How much the clinic has to do with one patient."""

    total_appointments: int = 0
    upcoming_appointments: int = 0
    active_journeys: int = 0
    open_tickets: int = 0
    total_communications: int = 0
    recent_communications: int = 0
    last_visit_date: datetime | None = None
    next_appointment_date: datetime | None = None


class PatientRecordRepository:
    """Queries over the records one patient owns in the other domains."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def statistics(self, patient_id: uuid.UUID) -> PatientStatistics:
        """Counts and dates of the patient's appointments, journeys, tickets and messages (one query)."""
        row = (await self.session.execute(STATISTICS, {"patient_id": patient_id})).one()
        return PatientStatistics(*row)

    async def latest_appointments(self, patient_id: uuid.UUID, limit: int = 10) -> list[Appointment]:
        """The patient's latest appointments by start time (future ones included)."""
        stmt = (
            select(Appointment)
            .where(Appointment.patient_id == patient_id)
            .order_by(Appointment.start_time.desc(), Appointment.id)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def active_journeys(self, patient_id: uuid.UUID) -> list[tuple[JourneyInstance, str]]:
        """The patient's active journey instances with their journey's name, most recent first."""
        stmt = (
            select(JourneyInstance, Journey.name)
            .join(Journey, Journey.id == JourneyInstance.journey_id)
            .where(
                JourneyInstance.patient_id == patient_id,
                JourneyInstance.status == JourneyInstanceStatus.ACTIVE,
            )
            .order_by(JourneyInstance.created_at.desc(), JourneyInstance.id)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]

    async def open_tickets(self, patient_id: uuid.UUID, limit: int = 50) -> list[Ticket]:
        """The patient's tickets that are not resolved or closed, newest first."""
        stmt = (
            select(Ticket)
            .where(Ticket.patient_id == patient_id, Ticket.status.in_(OPEN_TICKET_STATUSES))
            .order_by(Ticket.created_at.desc(), Ticket.id)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def latest_communications(self, patient_id: uuid.UUID, limit: int = 10) -> list[Communication]:
        """The patient's latest messages, inbound and outbound."""
        stmt = self.conversations_of(patient_id).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    def appointments_of(
        self, patient_id: uuid.UUID, *, status: AppointmentStatus | None = None, upcoming: bool | None = None
    ) -> Select[Any]:
        """The patient's appointments; upcoming ones soonest first, otherwise latest first."""
        stmt = select(Appointment).where(Appointment.patient_id == patient_id)
        if status:
            stmt = stmt.where(Appointment.status == status)
        if upcoming is True:
            stmt = stmt.where(
                Appointment.start_time > func.now(), Appointment.status.in_(ACTIVE_APPOINTMENT_STATUSES)
            )
            return stmt.order_by(Appointment.start_time, Appointment.id)
        if upcoming is False:
            stmt = stmt.where(Appointment.start_time <= func.now())
        return stmt.order_by(Appointment.start_time.desc(), Appointment.id)

    def conversations_of(
        self, patient_id: uuid.UUID, *, channel: Channel | None = None, direction: Direction | None = None
    ) -> Select[Any]:
        """The patient's messages, newest first."""
        stmt = select(Communication).where(Communication.patient_id == patient_id)
        if channel:
            stmt = stmt.where(Communication.channel == channel)
        if direction:
            stmt = stmt.where(Communication.direction == direction)
        return stmt.order_by(Communication.created_at.desc(), Communication.id.desc())

    async def move_owned_records(self, *, from_patient: uuid.UUID, to_patient: uuid.UUID) -> dict[str, int]:
        """Re-point everything `from_patient` owns in the other domains to `to_patient`; counts per kind."""
        moved: dict[str, int] = {}
        for kind, model in OWNED_RECORDS.items():
            stmt = (
                update(model)
                .where(model.patient_id == from_patient)
                .values(patient_id=to_patient)
                .execution_options(synchronize_session=False)
            )
            result = await self.session.execute(stmt)
            moved[kind] = result.rowcount if isinstance(result, CursorResult) else 0
        return moved


# A patient's id as a statement names it: a value, a bound parameter or a correlated column.
PatientKey = uuid.UUID | ColumnElement[Any] | QueryableAttribute[Any]


def _one_of(column: Any, values: Iterable[str]) -> Any:
    """`column = ANY(ARRAY[...])`: what `IN (...)` means, compiled once with the statement (an IN list is
    expanded again at every execution)."""
    return column == any_(postgresql.array([getattr(v, "value", v) for v in values]))


def statistics_columns(patient_id: PatientKey, tenant_id: Any = None) -> list[Any]:
    """The columns of `PatientStatistics`, in its field order, for one patient (an id, or a correlated
    column such as `Patient.id`); each is a scalar subquery served by a `patient_id` index. With
    `tenant_id` (a bound parameter) each subquery also filters by it, for Core statements that the ORM's
    tenant criteria do not reach."""
    now = func.now()

    def owned_by(model: Any) -> list[ColumnElement[bool]]:
        where = [model.patient_id == patient_id]
        return where if tenant_id is None else [*where, model.tenant_id == tenant_id]

    upcoming = and_(Appointment.start_time > now, _one_of(Appointment.status, ACTIVE_APPOINTMENT_STATUSES))
    visited = and_(Appointment.start_time <= now, _one_of(Appointment.status, VISIT_STATUSES))
    recent_since = now - func.make_interval(0, 0, 0, RECENT_COMMUNICATIONS_DAYS)

    def first(column: Any) -> Any:
        return select(column).select_from(Appointment).where(*owned_by(Appointment)).scalar_subquery()

    return [
        _count(Appointment, owned_by(Appointment)).label("total_appointments"),
        _count(Appointment, owned_by(Appointment), upcoming).label("upcoming_appointments"),
        _count(
            JourneyInstance, owned_by(JourneyInstance), JourneyInstance.status == JourneyInstanceStatus.ACTIVE
        ).label("active_journeys"),
        _count(Ticket, owned_by(Ticket), _one_of(Ticket.status, OPEN_TICKET_STATUSES)).label("open_tickets"),
        _count(Communication, owned_by(Communication)).label("total_communications"),
        _count(Communication, owned_by(Communication), Communication.created_at >= recent_since).label(
            "recent_communications"
        ),
        first(func.max(Appointment.start_time).filter(visited)).label("last_visit_date"),
        first(func.min(Appointment.start_time).filter(upcoming)).label("next_appointment_date"),
    ]


def _count(model: Any, owned: list[ColumnElement[bool]], *conditions: ColumnElement[bool]) -> Any:
    """`(SELECT count(*) FROM model WHERE patient_id = :id AND ...)` as a column."""
    return select(func.count()).select_from(model).where(*owned, *conditions).scalar_subquery()


# Built once: building these per request cost more than running them (SQLAlchemy still caches the SQL).
STATISTICS = prebuilt(select(*statistics_columns(bindparam("patient_id", type_=PG_UUID(as_uuid=True)))))
