"""Patient queries (tenant-scoped by the session): lookup, search, statistics, and the records a patient owns.

Name, email and phone searches are written against the trigram (GIN) indexes of the patients table, so they
stay fast at a million patients: `%` (similarity) and `LIKE '%...%'` on the indexed expressions.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import CursorResult

from core.errors import NotFound, Unprocessable
from core.phones import digits_only, to_e164
from core.repository import Repository
from core.settings import get_settings
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
from domain.patients.models import ChannelConsent, Patient, full_name_expression
from domain.patients.schemas import PatientAdvancedSearch, PatientSearchType
from domain.scheduling.models import Appointment, BookingConversation, WaitlistEntry, WaitlistOffer
from domain.tickets.models import Ticket

PHONE_LIKE = re.compile(r"^[\d\s().+-]+$")
VISIT_STATUSES = (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED)
OPEN_TICKET_STATUSES = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING_ON_PATIENT)
RECENT_COMMUNICATIONS_DAYS = 30
# Age groups of the demographics report: (name, first age *not* in the group).
AGE_GROUP_BOUNDS = (("0-17", 18), ("18-34", 35), ("35-49", 50), ("50-64", 65))
OLDEST_AGE_GROUP, UNKNOWN_AGE = "65+", "unknown"
UNSPECIFIED = "unspecified"  # the demographics key for a missing gender, channel or language
AGE_GROUPS = (*(name for name, _ in AGE_GROUP_BOUNDS), OLDEST_AGE_GROUP, UNKNOWN_AGE)
DEMOGRAPHIC_DIMENSIONS = ("status", "gender", "age_group", "preferred_channel", "preferred_language")
# Records a patient owns that a merge moves to the surviving record. None of them has a unique constraint
# involving patient_id, so re-pointing never clashes (slot holds belong to conversations, not patients).
OWNED_RECORDS: dict[str, Any] = {
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


def full_name() -> ColumnElement[str]:
    """`lower(first_name || ' ' || last_name)`, exactly as the trigram index is built."""
    return full_name_expression(Patient)  # type: ignore[no-any-return]


def name_matches(query: str) -> ColumnElement[bool]:
    """Trigram similarity (tolerates typos) or a substring of the full name; both use the GIN index."""
    q = query.lower()
    return or_(full_name().op("%")(q), full_name().contains(q, autoescape=True))


def name_similarity(query: str) -> ColumnElement[float]:
    """pg_trgm similarity (0..1) of the full name to `query`."""
    return func.similarity(full_name(), query.lower())


class PatientRepository(Repository[Patient]):
    """Queries over patients and what they own."""

    model = Patient
    label = "Patient"

    async def get_for_update(self, patient_id: uuid.UUID) -> Patient:
        """The patient, row-locked until the transaction ends (serialises writes against merges)."""
        locked = await self.lock(patient_id)
        if patient_id not in locked:
            raise NotFound(f"{self.label} not found.")
        return locked[patient_id]

    async def lock(self, *patient_ids: uuid.UUID) -> dict[uuid.UUID, Patient]:
        """Row-lock the patients that exist, in id order (so concurrent callers never deadlock)."""
        stmt = (
            self.base()
            .where(Patient.id.in_(patient_ids))
            .order_by(Patient.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {p.id: p for p in (await self.session.scalars(stmt)).all()}

    async def by_mrn(self, mrn: str) -> Patient | None:
        """The patient with this MRN (as typed or upper-cased, as MRNs are stored)."""
        stmt = self.base().where(Patient.mrn.in_({mrn, mrn.upper()})).order_by(Patient.mrn.desc()).limit(1)
        return await self.session.scalar(stmt)

    def filtered(self, *, search: str | None = None, status: str | None = None) -> Select[Any]:
        """Patients whose name or email contains the search, or whose phone or MRN matches, best first.

        A filter for lists: substring matches only, which the trigram indexes answer exactly and fast even
        at a million patients. Typo-tolerant name search is `quick_search` (`GET /patients/search`)."""
        stmt = self.base()
        if status:
            stmt = stmt.where(Patient.status == status)
        order: list[Any] = []
        if search:
            q = search.strip()
            conditions = [
                full_name().contains(q.lower(), autoescape=True),
                func.lower(Patient.email_primary).contains(q.lower(), autoescape=True),
                Patient.mrn == q.upper(),
            ]
            digits = digits_only(q)
            if PHONE_LIKE.match(q) and len(digits) >= 3:
                conditions.append(Patient.phone_primary.contains(digits, autoescape=True))
            stmt = stmt.where(or_(*conditions))
            order.append(name_similarity(q).desc())
        return stmt.order_by(*order, Patient.last_name, Patient.first_name, Patient.id)

    async def quick_search(self, query: str, search_type: PatientSearchType, limit: int) -> list[Patient]:
        """Up to `limit` patients matching `query` by one kind of identifier, best matches first."""
        q = query.strip()
        stmt = self.base()
        if search_type is PatientSearchType.NAME:
            stmt = stmt.where(name_matches(q)).order_by(name_similarity(q).desc())
        elif search_type is PatientSearchType.PHONE:
            stmt = self._phone_search(stmt, q)
        elif search_type is PatientSearchType.MRN:
            upper = q.upper()
            # MRNs are stored upper-case, so a plain prefix match can use ix_patients_tenant_mrn_pattern.
            stmt = stmt.where(Patient.mrn.startswith(upper, autoescape=True)).order_by(
                (Patient.mrn == upper).desc(), Patient.mrn
            )
        else:
            lower = q.lower()
            email = func.lower(Patient.email_primary)
            stmt = stmt.where(email.contains(lower, autoescape=True)).order_by(
                (email == lower).desc(), func.similarity(email, lower).desc()
            )
        stmt = stmt.order_by(Patient.last_name, Patient.first_name, Patient.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    @staticmethod
    def _phone_search(stmt: Select[Any], query: str) -> Select[Any]:
        digits = digits_only(query)
        if len(digits) < 2:
            raise Unprocessable("A phone search needs at least 2 digits.")
        conditions = [Patient.phone_primary.contains(digits, autoescape=True)]
        exact: ColumnElement[bool] = literal(False)
        try:
            # A national number ("020 7946 0958") only matches once normalised like stored numbers.
            e164 = to_e164(query, get_settings().default_phone_region)
        except ValueError:
            pass
        else:
            exact = Patient.phone_primary == e164
            conditions.append(exact)
        return stmt.where(or_(*conditions)).order_by(exact.desc())

    def advanced(self, criteria: PatientAdvancedSearch) -> Select[Any]:
        """Patients matching every criterion given, ordered by last then first name."""
        conditions: list[ColumnElement[bool]] = []
        for prefix, column in (
            (criteria.first_name, Patient.first_name),
            (criteria.last_name, Patient.last_name),
        ):
            if prefix:
                # The substring test on the full name lets the trigram index narrow the rows first.
                conditions.append(full_name().contains(prefix.lower(), autoescape=True))
                conditions.append(func.lower(column).startswith(prefix.lower(), autoescape=True))
        if criteria.date_of_birth:
            conditions.append(Patient.date_of_birth == criteria.date_of_birth)
        if criteria.phone:
            digits = digits_only(criteria.phone)
            if len(digits) < 2:
                raise Unprocessable("A phone search needs at least 2 digits.")
            conditions.append(Patient.phone_primary.contains(digits, autoescape=True))
        if criteria.email:
            email = criteria.email.lower()
            conditions.append(func.lower(Patient.email_primary).contains(email, autoescape=True))
        if criteria.mrn:
            conditions.append(Patient.mrn.startswith(criteria.mrn.upper(), autoescape=True))
        if criteria.gender:
            conditions.append(Patient.gender == criteria.gender)
        if criteria.status:
            conditions.append(Patient.status == criteria.status)
        if criteria.city:
            conditions.append(func.lower(Patient.city) == criteria.city.lower())
        if criteria.created_from:
            conditions.append(Patient.created_at >= criteria.created_from)
        if criteria.created_to:
            conditions.append(Patient.created_at <= criteria.created_to)
        return self.base().where(*conditions).order_by(Patient.last_name, Patient.first_name, Patient.id)

    async def statistics(self, patient_id: uuid.UUID) -> PatientStatistics:
        """Counts and dates of the patient's appointments, journeys, tickets and messages (two queries)."""
        now = func.now()
        upcoming = and_(Appointment.start_time > now, Appointment.status.in_(ACTIVE_APPOINTMENT_STATUSES))
        visited = and_(Appointment.start_time <= now, Appointment.status.in_(VISIT_STATUSES))
        appointments = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count().filter(upcoming),
                    func.max(Appointment.start_time).filter(visited),
                    func.min(Appointment.start_time).filter(upcoming),
                )
                .select_from(Appointment)
                .where(Appointment.patient_id == patient_id)
            )
        ).one()
        recent_since = now - func.make_interval(0, 0, 0, RECENT_COMMUNICATIONS_DAYS)
        others = (
            await self.session.execute(
                select(
                    _count(
                        JourneyInstance, patient_id, JourneyInstance.status == JourneyInstanceStatus.ACTIVE
                    ),
                    _count(Ticket, patient_id, Ticket.status.in_(OPEN_TICKET_STATUSES)),
                    _count(Communication, patient_id),
                    _count(Communication, patient_id, Communication.created_at >= recent_since),
                )
            )
        ).one()
        return PatientStatistics(
            total_appointments=appointments[0],
            upcoming_appointments=appointments[1],
            last_visit_date=appointments[2],
            next_appointment_date=appointments[3],
            active_journeys=others[0],
            open_tickets=others[1],
            total_communications=others[2],
            recent_communications=others[3],
        )

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
        """Re-point every appointment, message, ticket and journey instance; returns counts per kind."""
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
        # Records merged into the duplicate earlier now point straight at the survivor.
        await self.session.execute(
            update(Patient)
            .where(Patient.merged_into_id == from_patient)
            .values(merged_into_id=to_patient)
            .execution_options(synchronize_session=False)
        )
        return moved

    async def consents_of(self, *patient_ids: uuid.UUID) -> list[ChannelConsent]:
        """The channel consents of the given patients."""
        stmt = select(ChannelConsent).where(ChannelConsent.patient_id.in_(patient_ids))
        return list((await self.session.scalars(stmt)).all())

    async def demographics(self, tenant_timezone: str) -> list[dict[str, Any]]:
        """One row per (dimension, value) with its count, plus a totals row; merged duplicates excluded."""
        today = func.timezone(tenant_timezone, func.now())
        month_start = func.timezone(tenant_timezone, func.date_trunc("month", today))
        age = func.date_part("year", func.age(cast(today, Date), Patient.date_of_birth))
        age_group = case(
            (Patient.date_of_birth.is_(None), UNKNOWN_AGE),
            *((age < upper, group) for group, upper in AGE_GROUP_BOUNDS),
            else_=OLDEST_AGE_GROUP,
        )
        people = (
            select(
                Patient.status.label("status"),
                func.coalesce(Patient.gender, UNSPECIFIED).label("gender"),
                age_group.label("age_group"),
                func.coalesce(Patient.preferred_channel, UNSPECIFIED).label("preferred_channel"),
                func.coalesce(Patient.preferred_language, UNSPECIFIED).label("preferred_language"),
                (Patient.created_at >= month_start).label("is_new"),
            )
            .where(Patient.merged_into_id.is_(None))
            .subquery()
        )
        dimensions = [people.c[name] for name in DEMOGRAPHIC_DIMENSIONS]
        # One scan, grouped several ways at once; the empty grouping set is the totals row.
        stmt = select(
            *dimensions,
            func.count().label("count"),
            func.count().filter(people.c.is_new).label("new"),
        ).group_by(func.grouping_sets(*(tuple_(c) for c in dimensions), tuple_()))
        return [dict(row._mapping) for row in (await self.session.execute(stmt)).all()]


def _count(model: Any, patient_id: uuid.UUID, *conditions: ColumnElement[bool]) -> Any:
    """`(SELECT count(*) FROM model WHERE patient_id = :id AND ...)` as a column."""
    return (
        select(func.count())
        .select_from(model)
        .where(model.patient_id == patient_id, *conditions)
        .scalar_subquery()
    )
