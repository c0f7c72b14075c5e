"""The waitlist's backfill: when an appointment is cancelled, its freed time is offered to the matching
waitlisted patients, oldest first, one wave at a time (the `WaitlistBackfillWorkflow` drives it).

Matching, waves, holds and their expiry live here; answering an offer (which books through the one
conflict-safe path) is `waitlist.py`'s, so this module never imports the booking service.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock
from core.errors import Unprocessable
from core.repository import Repository
from domain.communications.service import Localised
from domain.enums import AppointmentStatus, PatientStatus, SlotStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling import notifications, workflow_jobs
from domain.scheduling.models import Appointment, Location, TimeSlot, WaitlistEntry, WaitlistOffer
from domain.scheduling.plan import WaitlistBackfillInput
from domain.scheduling.repository import AppointmentRepository, tenant_timezone
from domain.scheduling.slot_schemas import PartOfDay
from domain.scheduling.slots import PARTS_OF_DAY
from domain.scheduling.waitlist_schemas import OfferStatus, WaitlistStatus
from domain.tenants.models import Tenant
from domain.tenants.schemas import WaitlistSettings
from domain.tenants.service import settings_of

OPEN = OfferStatus.OFFERED.value


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


async def lock_freed_time(session: AsyncSession, cancelled_appointment_id: uuid.UUID) -> None:
    await advisory_xact_lock(session, f"waitlist:freed:{cancelled_appointment_id}")


async def policy_of(session: AsyncSession, tenant_id: uuid.UUID) -> WaitlistSettings:
    """The tenant's wave size and hold (`TenantSettings.waitlist`; defaults when stored ones are invalid)."""
    tenant = await session.get(Tenant, tenant_id)
    try:
        return settings_of(tenant).waitlist if tenant is not None else WaitlistSettings()
    except ValidationError:
        return WaitlistSettings()


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


async def still_free(
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


async def backfill_after_cancellation(session: AsyncSession, appointment: Appointment) -> None:
    """After the commit, offer the cancelled appointment's time to matching waitlisted patients."""
    if appointment.start_time <= datetime.now(UTC):
        return
    if not await _candidates(session, appointment, limit=1, lock=False):
        return  # nobody waits for this time: no workflow
    policy = await policy_of(session, appointment.tenant_id)
    workflow_jobs.start_waitlist_backfill(
        session,
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
    await lock_freed_time(session, cancelled_appointment_id)
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
    if not await still_free(
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
        await tell_patient(
            session, offer, "offer", "waitlist_offer", await offer_variables(session, offer, hold_minutes)
        )
    return Wave(OPEN, [o.id for o in created], expires_at)


async def expire_wave(session: AsyncSession, cancelled_appointment_id: uuid.UUID, wave: int) -> int:
    """Close a wave's unanswered offers (their patients wait on); how many were still open."""
    await lock_freed_time(session, cancelled_appointment_id)
    offers = await WaitlistOfferRepository(session).of_freed_time(cancelled_appointment_id)
    still_open = [o for o in offers if o.wave == wave and o.status == OPEN]
    for offer in still_open:
        offer.status = OfferStatus.EXPIRED.value
        await back_to_waiting(session, offer)
    await session.flush()
    return len(still_open)


async def pending_offer_of(session: AsyncSession, patient_id: uuid.UUID) -> WaitlistOffer | None:
    """The patient's newest open offer, if any (where their replies go)."""
    stmt = (
        select(WaitlistOffer)
        .where(WaitlistOffer.patient_id == patient_id, WaitlistOffer.status == OPEN)
        .order_by(WaitlistOffer.created_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def offer_variables(session: AsyncSession, offer: WaitlistOffer, hold_minutes: int) -> Localised:
    """The `waitlist_offer` template's variables: the freed time and its practitioner, and the hold."""
    time = await notifications.offered_time(
        session, offer.start_time, offer.location_id, offer.practitioner_id
    )
    return lambda language: {**time.written_in(language, nobody=""), "hold_minutes": hold_minutes}


async def tell_patient(
    session: AsyncSession,
    offer: WaitlistOffer,
    kind: str,
    template_name: str,
    variables: Localised | None = None,
) -> None:
    """One message about an offer (the built-in `template_name`, in the patient's language), once per
    (offer, kind); a patient with no address is skipped."""
    patient = await session.scalar(select(Patient).where(Patient.id == offer.patient_id))
    if patient is None:
        return
    try:
        await notifications.send_conversational(
            session,
            patient=patient,
            template_name=template_name,
            variables=variables,
            key=f"waitlist-offer:{offer.id}:{kind}",
        )
    except Unprocessable:
        pass  # no address on the patient's channel: the offer simply goes unanswered


async def back_to_waiting(session: AsyncSession, offer: WaitlistOffer) -> None:
    entry = await session.get(WaitlistEntry, offer.waitlist_entry_id)
    if entry is not None and entry.status == WaitlistStatus.OFFERED.value:
        entry.status = WaitlistStatus.WAITING.value
