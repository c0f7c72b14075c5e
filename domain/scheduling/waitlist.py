"""Waitlist backfill: a cancelled time is offered to waitlisted patients, wave by wave.

A patient waits for a practitioner (or any practitioner of a speciality) between two dates, optionally in
one part of the day. When an appointment is cancelled, one `WaitlistBackfillWorkflow` per cancelled
appointment (`waitlist-backfill-<uuid>`) is started after the commit. It asks `offer_wave` for each wave: the
oldest matching entries (the tenant's `waitlist.wave_size`, default 3), each offered the time until the hold
(`waitlist.hold_minutes`, default 30) runs out. The first acceptance (a routed reply, or the accept API)
books through `service.book`, the conflict-safe path, and the rest of the wave are told it is taken; an
unanswered wave expires and the next one goes; when nobody matching is left, the workflow ends.

Idempotency: one offer per (cancelled appointment, entry), unique in the database; every message carries a
key derived from its offer's id. Every change to the offers of one freed time takes the same advisory lock.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import languages
from core.errors import Conflict, NotFound
from core.repository import Repository
from domain.communications import reply_words
from domain.communications.models import Communication
from domain.enums import PatientStatus
from domain.patients.models import Patient
from domain.practitioners.repository import PractitionerRepository
from domain.scheduling import notifications, service, workflow_jobs
from domain.scheduling.backfill import (
    CLOSED_OFFER,
    OPEN,
    WaitlistOfferRepository,
    back_to_waiting,
    lock_freed_time,
    still_free,
    tell_patient,
)
from domain.scheduling.models import WaitlistEntry, WaitlistOffer
from domain.scheduling.plan import SIGNAL_OFFER_SETTLED, OfferSettledSignal
from domain.scheduling.waitlist_schemas import OfferStatus, WaitlistEntryCreate, WaitlistStatus

YES = reply_words.every_language(reply_words.YES)
NO = reply_words.every_language(reply_words.NO)


class WaitlistRepository(Repository[WaitlistEntry]):
    """Queries over waitlist entries."""

    model = WaitlistEntry
    label = "Waitlist entry"

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        practitioner_id: uuid.UUID | None = None,
        speciality: str | None = None,
        status: WaitlistStatus | None = None,
    ) -> Select[WaitlistEntry]:
        """Entries matching the filters, oldest first (the order offers go out in)."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(WaitlistEntry.patient_id == patient_id)
        if practitioner_id is not None:
            stmt = stmt.where(WaitlistEntry.practitioner_id == practitioner_id)
        if speciality:
            stmt = stmt.where(func.lower(WaitlistEntry.speciality) == speciality.lower())
        if status is not None:
            stmt = stmt.where(WaitlistEntry.status == status.value)
        return stmt.order_by(WaitlistEntry.created_at, WaitlistEntry.id)


# ---------------------------------------------------------------- entries


async def add_entry(session: AsyncSession, data: WaitlistEntryCreate) -> WaitlistEntry:
    """Put an active patient on the waitlist for a practitioner or a speciality within dates."""
    patient = await session.scalar(select(Patient).where(Patient.id == data.patient_id))
    if patient is None:
        raise NotFound("Patient not found.")
    if patient.merged_into_id is not None or patient.status != PatientStatus.ACTIVE.value:
        raise Conflict("This patient record is not active.")
    if data.practitioner_id is not None:
        await PractitionerRepository(session).get_or_404(data.practitioner_id)
    values = data.model_dump(exclude={"tenant_id"})
    values["part_of_day"] = data.part_of_day.value
    return await WaitlistRepository(session).add(WaitlistEntry(**values, status=WaitlistStatus.WAITING.value))


async def remove_entry(session: AsyncSession, entry_id: uuid.UUID) -> None:
    """Take an entry off the waitlist (kept as `removed`); an offer it holds is withdrawn."""
    entry = await WaitlistRepository(session).get_or_404(entry_id)
    if entry.status == WaitlistStatus.BOOKED.value:
        raise Conflict("This waitlist entry has already been booked.")
    entry.status = WaitlistStatus.REMOVED.value
    held = await session.scalars(
        select(WaitlistOffer).where(WaitlistOffer.waitlist_entry_id == entry.id, WaitlistOffer.status == OPEN)
    )
    for offer in held.all():
        offer.status = OfferStatus.DECLINED.value
        _settled(session, offer)
    await session.flush()


# ---------------------------------------------------------------- cancellations and waves


# ---------------------------------------------------------------- answers


async def accept_offer(session: AsyncSession, offer_id: uuid.UUID) -> WaitlistOffer:
    """Book the offered time for the patient; the offer comes back `accepted`, or `taken` if it is gone.

    Declined or expired offers are a Conflict. A `taken` answer has changed state (the wave is closed and
    told), so the caller commits before reporting it."""
    offer = await WaitlistOfferRepository(session).get_or_404(offer_id)
    await lock_freed_time(session, offer.cancelled_appointment_id)
    await session.refresh(offer)
    if offer.status in (OfferStatus.ACCEPTED.value, OfferStatus.TAKEN.value):
        return offer
    if offer.status != OPEN:
        raise Conflict(CLOSED_OFFER[offer.status])
    if offer.expires_at <= datetime.now(UTC):
        raise Conflict(CLOSED_OFFER[OfferStatus.EXPIRED.value])
    entry = await session.get(WaitlistEntry, offer.waitlist_entry_id)
    where: dict[str, object] = (
        {"time_slot_id": offer.time_slot_id}
        if offer.time_slot_id
        else {
            "practitioner_id": offer.practitioner_id,
            "start_time": offer.start_time,
            "end_time": offer.end_time,
        }
    )
    try:
        async with session.begin_nested():
            appointment = await service.book(
                session,
                patient_id=offer.patient_id,
                location_id=offer.location_id,
                appointment_type=entry.appointment_type if entry else None,
                source_channel="waitlist",
                **where,  # type: ignore[arg-type]
            )
    except Conflict:
        if await still_free(
            session,
            practitioner_id=offer.practitioner_id,
            time_slot_id=offer.time_slot_id,
            start_time=offer.start_time,
            end_time=offer.end_time,
        ):
            raise  # the time is free but this patient cannot be booked (e.g. their record was merged)
        await _close_open_offers(session, offer.cancelled_appointment_id)
        return offer
    offer.status, offer.appointment_id = OfferStatus.ACCEPTED.value, appointment.id
    if entry is not None:
        entry.status, entry.appointment_id = WaitlistStatus.BOOKED.value, appointment.id
    await _close_open_offers(session, offer.cancelled_appointment_id)
    patient = await session.scalar(select(Patient).where(Patient.id == offer.patient_id))
    assert patient is not None
    await notifications.send_confirmation(
        session, patient=patient, appointment=appointment, key=f"waitlist-offer:{offer.id}:confirmation"
    )
    await session.flush()
    await workflow_jobs.start_appointment_workflow(session, appointment)
    _settled(session, offer)
    return offer


async def decline_offer(session: AsyncSession, offer_id: uuid.UUID) -> WaitlistOffer:
    """The patient passes on this time (they stay on the waitlist); Conflict if the offer is closed."""
    offer = await WaitlistOfferRepository(session).get_or_404(offer_id)
    await lock_freed_time(session, offer.cancelled_appointment_id)
    await session.refresh(offer)
    if offer.status == OfferStatus.DECLINED.value:
        return offer
    if offer.status != OPEN:
        raise Conflict(CLOSED_OFFER.get(offer.status, "This offer was accepted."))
    offer.status = OfferStatus.DECLINED.value
    await back_to_waiting(session, offer)
    await session.flush()
    _settled(session, offer)
    return offer


def parse_answer(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither or both (in any language of
    `reply_words`, accents and case ignored: `SÍ` is yes)."""
    words = languages.words(reply)
    # A one-letter answer ("Y", "N") counts only alone: in Spanish "y" is "and" ("¿y a qué hora?").
    found = set(words) if len(words) == 1 else {w for w in words if len(w) > 1}
    yes, no = bool(found & YES), bool(found & NO)
    return None if yes == no else yes


async def reply_from_message(
    session: AsyncSession,
    cancelled_appointment_id: uuid.UUID,
    communication_id: uuid.UUID,
) -> tuple[str, uuid.UUID | None]:
    """Handle a stored inbound message as the answer to the sender's offer; (offer status, offer id)."""
    message = await session.scalar(select(Communication).where(Communication.id == communication_id))
    if message is None or message.patient_id is None:
        return "ignored", None
    offer = (
        await session.scalars(
            WaitlistOfferRepository(session).filtered(
                patient_id=message.patient_id, cancelled_appointment_id=cancelled_appointment_id
            )
        )
    ).first()
    if offer is None:
        return "ignored", None
    answer = parse_answer(message.message)
    reply_key = f"reply:{communication_id}"
    try:
        if answer is None:
            if offer.status == OPEN:
                await tell_patient(session, offer, reply_key, "waitlist_not_understood")
                return "not_understood", offer.id
        elif answer:
            offer = await accept_offer(session, offer.id)
        else:
            offer = await decline_offer(session, offer.id)
    except Conflict:
        await session.refresh(offer)
        if offer.status == OPEN:  # the time is free, but this patient cannot be booked into it
            offer = await decline_offer(session, offer.id)
        elif offer.status == OfferStatus.EXPIRED.value:
            await tell_patient(session, offer, reply_key, "waitlist_expired")
    return offer.status, offer.id


# ---------------------------------------------------------------- helpers


async def _close_open_offers(session: AsyncSession, cancelled_appointment_id: uuid.UUID) -> None:
    """The time is gone: every offer still open is `taken`, and its patient is told (and waits on)."""
    for offer in await WaitlistOfferRepository(session).of_freed_time(cancelled_appointment_id):
        if offer.status != OPEN:
            continue
        offer.status = OfferStatus.TAKEN.value
        await back_to_waiting(session, offer)
        time = await notifications.offered_time(session, offer.start_time, offer.location_id, None)
        await tell_patient(session, offer, "taken", "waitlist_taken", time.written_in)
    await session.flush()


def _settled(session: AsyncSession, offer: WaitlistOffer) -> None:
    workflow_jobs.signal_waitlist_backfill(
        session,
        offer.cancelled_appointment_id,
        SIGNAL_OFFER_SETTLED,
        OfferSettledSignal(offer_id=str(offer.id), status=offer.status),
    )
