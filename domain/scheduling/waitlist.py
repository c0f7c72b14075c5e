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

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock
from core.errors import Conflict, NotFound, Unprocessable
from core.repository import Repository
from domain.communications.models import Communication
from domain.enums import AppointmentStatus, PatientStatus, SlotStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.scheduling import notifications, service, workflow_jobs
from domain.scheduling.booking import PARTS_OF_DAY
from domain.scheduling.models import Appointment, Location, TimeSlot, WaitlistEntry, WaitlistOffer
from domain.scheduling.plan import OfferSettledSignal, WaitlistBackfillInput
from domain.scheduling.repository import AppointmentRepository, tenant_timezone
from domain.scheduling.schemas import OfferStatus, PartOfDay, WaitlistEntryCreate, WaitlistStatus
from domain.scheduling.workflow_jobs import WorkflowGateway
from domain.tenants.models import Tenant
from domain.tenants.schemas import WaitlistSettings
from domain.tenants.service import settings_of

OPEN = OfferStatus.OFFERED.value
YES = {"yes", "y", "yeah", "yep", "ok", "okay", "sure", "accept", "book", "confirm", "si", "oui"}
NO = {"no", "n", "nope", "pass", "decline", "skip"}
CLOSED_OFFER = {
    OfferStatus.TAKEN.value: "This time has already been taken.",
    OfferStatus.DECLINED.value: "This offer was declined.",
    OfferStatus.EXPIRED.value: "This offer has expired.",
}


@dataclass
class Wave:
    """What `offer_wave` did: `offered` (ids, expiry) or why not (exhausted, slot_gone, booked, closed)."""

    status: str
    offer_ids: list[uuid.UUID] = field(default_factory=list)
    expires_at: datetime | None = None


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


class WaitlistOfferRepository(Repository[WaitlistOffer]):
    """Queries over the offers of freed times."""

    model = WaitlistOffer
    label = "Waitlist offer"

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        cancelled_appointment_id: uuid.UUID | None = None,
        status: OfferStatus | None = None,
    ) -> Select[WaitlistOffer]:
        """Offers matching the filters, newest first."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(WaitlistOffer.patient_id == patient_id)
        if cancelled_appointment_id is not None:
            stmt = stmt.where(WaitlistOffer.cancelled_appointment_id == cancelled_appointment_id)
        if status is not None:
            stmt = stmt.where(WaitlistOffer.status == status.value)
        return stmt.order_by(WaitlistOffer.created_at.desc(), WaitlistOffer.id)

    async def of_freed_time(self, cancelled_appointment_id: uuid.UUID) -> list[WaitlistOffer]:
        """Every offer of one freed time (fresh from the database; pending changes are flushed first)."""
        await self.session.flush()
        stmt = (
            self.base()
            .where(WaitlistOffer.cancelled_appointment_id == cancelled_appointment_id)
            .order_by(WaitlistOffer.wave, WaitlistOffer.created_at)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.scalars(stmt)).all())


async def _lock_freed_time(session: AsyncSession, cancelled_appointment_id: uuid.UUID) -> None:
    await advisory_xact_lock(session, f"waitlist:freed:{cancelled_appointment_id}")


async def policy_of(session: AsyncSession, tenant_id: uuid.UUID) -> WaitlistSettings:
    """The tenant's wave size and hold (`TenantSettings.waitlist`; defaults when stored ones are invalid)."""
    tenant = await session.get(Tenant, tenant_id)
    try:
        return settings_of(tenant).waitlist if tenant is not None else WaitlistSettings()
    except ValidationError:
        return WaitlistSettings()


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


async def remove_entry(session: AsyncSession, gateway: WorkflowGateway, entry_id: uuid.UUID) -> None:
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
        _settled(session, gateway, offer)
    await session.flush()


# ---------------------------------------------------------------- cancellations and waves


async def _zone(session: AsyncSession, location_id: uuid.UUID | None) -> ZoneInfo:
    location = await session.get(Location, location_id) if location_id else None
    return ZoneInfo(
        location.timezone if location else await tenant_timezone(session, session.info["tenant_id"])
    )


async def _candidates(
    session: AsyncSession, appointment: Appointment, *, limit: int, lock: bool
) -> list[WaitlistEntry]:
    """The oldest waiting entries the freed time suits, not yet offered it, whose patient holds no offer."""
    practitioner = await session.get(Practitioner, appointment.practitioner_id)
    local = appointment.start_time.astimezone(await _zone(session, appointment.location_id))
    parts = [PartOfDay.ANY.value] + [
        p.value for p, (low, high) in PARTS_OF_DAY.items() if low <= local.time().replace(tzinfo=None) < high
    ]
    target = WaitlistEntry.practitioner_id == appointment.practitioner_id
    if practitioner is not None and practitioner.speciality:
        target = or_(
            target,
            and_(
                WaitlistEntry.practitioner_id.is_(None),
                func.lower(WaitlistEntry.speciality) == practitioner.speciality.lower(),
            ),
        )
    already_offered = (
        select(WaitlistOffer.id)
        .where(
            WaitlistOffer.waitlist_entry_id == WaitlistEntry.id,
            WaitlistOffer.cancelled_appointment_id == appointment.id,
        )
        .exists()
    )
    holds_an_offer = (
        select(WaitlistOffer.id)
        .where(WaitlistOffer.patient_id == WaitlistEntry.patient_id, WaitlistOffer.status == OPEN)
        .exists()
    )
    stmt = (
        select(WaitlistEntry)
        .join(Patient, Patient.id == WaitlistEntry.patient_id)
        .where(
            WaitlistEntry.status == WaitlistStatus.WAITING.value,
            target,
            WaitlistEntry.start_date <= local.date(),
            WaitlistEntry.end_date >= local.date(),
            WaitlistEntry.part_of_day.in_(parts),
            WaitlistEntry.patient_id != appointment.patient_id,
            Patient.status == PatientStatus.ACTIVE.value,
            Patient.merged_into_id.is_(None),
            ~already_offered,
            ~holds_an_offer,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(limit)
    )
    if lock:
        stmt = stmt.with_for_update(of=WaitlistEntry, skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def _still_free(
    session: AsyncSession,
    *,
    practitioner_id: uuid.UUID,
    time_slot_id: uuid.UUID | None,
    start_time: datetime,
    end_time: datetime,
) -> bool:
    """Whether the freed time can still be booked (a place in its slot, or no clash for the practitioner)."""
    if time_slot_id is not None:
        slot = await session.scalar(
            select(TimeSlot).where(TimeSlot.id == time_slot_id).execution_options(populate_existing=True)
        )
        return bool(slot and slot.status == SlotStatus.OPEN.value and slot.booked_count < slot.capacity)
    clashes = await AppointmentRepository(session).overlapping(
        practitioner_id=practitioner_id, start_time=start_time, end_time=end_time
    )
    return not clashes


async def backfill_after_cancellation(
    session: AsyncSession, gateway: WorkflowGateway, appointment: Appointment
) -> None:
    """After the commit, offer the cancelled appointment's time to matching waitlisted patients."""
    if appointment.start_time <= datetime.now(UTC):
        return
    if not await _candidates(session, appointment, limit=1, lock=False):
        return  # nobody waits for this time: no workflow
    policy = await policy_of(session, appointment.tenant_id)
    workflow_jobs.start_waitlist_backfill(
        session,
        gateway,
        WaitlistBackfillInput(
            tenant_id=str(appointment.tenant_id),
            cancelled_appointment_id=str(appointment.id),
            wave_size=policy.wave_size,
            hold_minutes=policy.hold_minutes,
        ),
    )


async def offer_wave(
    session: AsyncSession,
    cancelled_appointment_id: uuid.UUID,
    wave: int,
    *,
    wave_size: int,
    hold_minutes: int,
) -> Wave:
    """Offer the freed time to the next `wave_size` matching patients (the same offers again on retry)."""
    await _lock_freed_time(session, cancelled_appointment_id)
    # Serialises the tenant's waves, so two freed times never offer to one patient at once.
    await advisory_xact_lock(session, f"waitlist:waves:{session.info['tenant_id']}")
    offers = await WaitlistOfferRepository(session).of_freed_time(cancelled_appointment_id)
    if this_wave := [o for o in offers if o.wave == wave]:
        return Wave(OPEN, [o.id for o in this_wave if o.status == OPEN], this_wave[0].expires_at)
    if any(o.status == OfferStatus.ACCEPTED.value for o in offers):
        return Wave("booked")
    appointment = await session.scalar(select(Appointment).where(Appointment.id == cancelled_appointment_id))
    now = datetime.now(UTC)
    if appointment is None or appointment.status != AppointmentStatus.CANCELLED.value:
        return Wave("closed")
    if appointment.start_time <= now:
        return Wave("closed")
    if not await _still_free(
        session,
        practitioner_id=appointment.practitioner_id,
        time_slot_id=appointment.time_slot_id,
        start_time=appointment.start_time,
        end_time=appointment.end_time,
    ):
        return Wave("slot_gone")
    entries = await _candidates(session, appointment, limit=wave_size, lock=True)
    if not entries:
        return Wave("exhausted")
    expires_at = now + timedelta(minutes=hold_minutes)
    created = []
    for entry in entries:
        offer = WaitlistOffer(
            id=uuid.uuid4(),
            waitlist_entry_id=entry.id,
            patient_id=entry.patient_id,
            cancelled_appointment_id=appointment.id,
            practitioner_id=appointment.practitioner_id,
            location_id=appointment.location_id,
            time_slot_id=appointment.time_slot_id,
            start_time=appointment.start_time,
            end_time=appointment.end_time,
            wave=wave,
            status=OPEN,
            expires_at=expires_at,
        )
        entry.status = WaitlistStatus.OFFERED.value
        session.add(offer)
        created.append(offer)
    await session.flush()
    for offer in created:
        await _tell(session, offer, "offer", await _offer_text(session, offer, hold_minutes))
    return Wave(OPEN, [o.id for o in created], expires_at)


async def expire_wave(session: AsyncSession, cancelled_appointment_id: uuid.UUID, wave: int) -> int:
    """Close a wave's unanswered offers (their patients wait on); how many were still open."""
    await _lock_freed_time(session, cancelled_appointment_id)
    offers = await WaitlistOfferRepository(session).of_freed_time(cancelled_appointment_id)
    still_open = [o for o in offers if o.wave == wave and o.status == OPEN]
    for offer in still_open:
        offer.status = OfferStatus.EXPIRED.value
        await _back_to_waiting(session, offer)
    await session.flush()
    return len(still_open)


# ---------------------------------------------------------------- answers


async def accept_offer(session: AsyncSession, gateway: WorkflowGateway, offer_id: uuid.UUID) -> WaitlistOffer:
    """Book the offered time for the patient; the offer comes back `accepted`, or `taken` if it is gone.

    Declined or expired offers are a Conflict. A `taken` answer has changed state (the wave is closed and
    told), so the caller commits before reporting it."""
    offer = await WaitlistOfferRepository(session).get_or_404(offer_id)
    await _lock_freed_time(session, offer.cancelled_appointment_id)
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
        if await _still_free(
            session,
            practitioner_id=offer.practitioner_id,
            time_slot_id=offer.time_slot_id,
            start_time=offer.start_time,
            end_time=offer.end_time,
        ):
            raise  # the time is free but this patient cannot be booked (e.g. their record was merged)
        await _close_open_offers(session, gateway, offer.cancelled_appointment_id)
        return offer
    offer.status, offer.appointment_id = OfferStatus.ACCEPTED.value, appointment.id
    if entry is not None:
        entry.status, entry.appointment_id = WaitlistStatus.BOOKED.value, appointment.id
    await _close_open_offers(session, gateway, offer.cancelled_appointment_id)
    patient = await session.scalar(select(Patient).where(Patient.id == offer.patient_id))
    assert patient is not None
    await notifications.send_confirmation(
        session, patient=patient, appointment=appointment, key=f"waitlist-offer:{offer.id}:confirmation"
    )
    await session.flush()
    await workflow_jobs.start_appointment_workflow(session, gateway, appointment)
    _settled(session, gateway, offer)
    return offer


async def decline_offer(
    session: AsyncSession, gateway: WorkflowGateway, offer_id: uuid.UUID
) -> WaitlistOffer:
    """The patient passes on this time (they stay on the waitlist); Conflict if the offer is closed."""
    offer = await WaitlistOfferRepository(session).get_or_404(offer_id)
    await _lock_freed_time(session, offer.cancelled_appointment_id)
    await session.refresh(offer)
    if offer.status == OfferStatus.DECLINED.value:
        return offer
    if offer.status != OPEN:
        raise Conflict(CLOSED_OFFER.get(offer.status, "This offer was accepted."))
    offer.status = OfferStatus.DECLINED.value
    await _back_to_waiting(session, offer)
    await session.flush()
    _settled(session, gateway, offer)
    return offer


def parse_answer(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither."""
    words = set(re.findall(r"[a-z]+", reply.lower()))
    yes, no = bool(words & YES), bool(words & NO)
    return None if yes == no else yes


async def pending_offer_of(session: AsyncSession, patient_id: uuid.UUID) -> WaitlistOffer | None:
    """The patient's newest open offer, if any (where their replies go)."""
    stmt = (
        select(WaitlistOffer)
        .where(WaitlistOffer.patient_id == patient_id, WaitlistOffer.status == OPEN)
        .order_by(WaitlistOffer.created_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def reply_from_message(
    session: AsyncSession,
    gateway: WorkflowGateway,
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
                await _tell(
                    session,
                    offer,
                    reply_key,
                    "Sorry, I didn't catch that. Reply YES to book it or NO to pass.",
                )
                return "not_understood", offer.id
        elif answer:
            offer = await accept_offer(session, gateway, offer.id)
        else:
            offer = await decline_offer(session, gateway, offer.id)
    except Conflict:
        await session.refresh(offer)
        if offer.status == OPEN:  # the time is free, but this patient cannot be booked into it
            offer = await decline_offer(session, gateway, offer.id)
        elif offer.status == OfferStatus.EXPIRED.value:
            await _tell(
                session, offer, reply_key, "Sorry, this offer has expired. You're still on the waitlist."
            )
    return offer.status, offer.id


# ---------------------------------------------------------------- helpers


async def _back_to_waiting(session: AsyncSession, offer: WaitlistOffer) -> None:
    entry = await session.get(WaitlistEntry, offer.waitlist_entry_id)
    if entry is not None and entry.status == WaitlistStatus.OFFERED.value:
        entry.status = WaitlistStatus.WAITING.value


async def _close_open_offers(
    session: AsyncSession, gateway: WorkflowGateway, cancelled_appointment_id: uuid.UUID
) -> None:
    """The time is gone: every offer still open is `taken`, and its patient is told (and waits on)."""
    for offer in await WaitlistOfferRepository(session).of_freed_time(cancelled_appointment_id):
        if offer.status != OPEN:
            continue
        offer.status = OfferStatus.TAKEN.value
        await _back_to_waiting(session, offer)
        when = await notifications.local_time_text(session, offer.start_time, offer.location_id)
        await _tell(
            session,
            offer,
            "taken",
            f"Sorry, the {when} appointment has just been taken. You're still on the waitlist.",
        )
    await session.flush()


async def _offer_text(session: AsyncSession, offer: WaitlistOffer, hold_minutes: int) -> str:
    when = await notifications.local_time_text(session, offer.start_time, offer.location_id)
    practitioner = await session.get(Practitioner, offer.practitioner_id)
    who = f" with Dr. {practitioner.last_name}" if practitioner else ""
    return (
        f"Good news: an earlier appointment is free on {when}{who}. Reply YES to book it or NO to pass. "
        f"We'll keep it for you for {hold_minutes} minutes."
    )


async def _tell(session: AsyncSession, offer: WaitlistOffer, kind: str, message: str) -> None:
    """One message about an offer, once per (offer, kind); a patient with no address is skipped."""
    patient = await session.scalar(select(Patient).where(Patient.id == offer.patient_id))
    if patient is None:
        return
    try:
        await notifications.send_text(
            session,
            patient=patient,
            message=message,
            key=f"waitlist-offer:{offer.id}:{kind}",
            template_name=f"waitlist_{kind.split(':')[0]}",
        )
    except Unprocessable:
        pass  # no address on the patient's channel: the offer simply goes unanswered


def _settled(session: AsyncSession, gateway: WorkflowGateway, offer: WaitlistOffer) -> None:
    workflow_jobs.signal_waitlist_backfill(
        session,
        offer.cancelled_appointment_id,
        "offer_settled",
        OfferSettledSignal(offer_id=str(offer.id), status=offer.status),
    )
