"""Locations and practitioners' time slots: creating, listing, blocking and unblocking them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import violated_constraint
from core.errors import Conflict
from domain.enums import SlotStatus
from domain.practitioners.repository import PractitionerRepository
from domain.scheduling.models import Location, TimeSlot
from domain.scheduling.repository import (
    AppointmentRepository,
    LocationRepository,
    TimeSlotRepository,
    tenant_timezone,
)
from domain.scheduling.slot_schemas import (
    LocationCreate,
    LocationUpdate,
    PartOfDay,
    TimeSlotCreate,
    TimeSlotUpdate,
)
from domain.schemas import changes

SLOT_OVERLAP_CONSTRAINT = "ex_time_slots_practitioner_overlap"

# The local hours each part of the day covers (waitlist entries and slot searches ask for one).
PARTS_OF_DAY = {
    PartOfDay.MORNING: (time(0), time(12)),
    PartOfDay.AFTERNOON: (time(12), time(17)),
    PartOfDay.EVENING: (time(17), time(23, 59, 59)),
}


async def create_location(repo: LocationRepository, data: LocationCreate) -> Location:
    """Add a location to the caller's tenant."""
    return await repo.add(Location(**data.model_dump(exclude={"tenant_id"})))


async def update_location(repo: LocationRepository, location_id: uuid.UUID, data: LocationUpdate) -> Location:
    """Apply the fields sent in a PATCH."""
    location = await repo.get_or_404(location_id)
    for field, value in changes(data).items():
        if value is None and field in {"name", "timezone", "is_active"}:
            continue  # required columns: an explicit null leaves them unchanged
        setattr(location, field, value)
    return await repo.save(location)


async def _overlapping_slot(repo: TimeSlotRepository, slot: TimeSlot) -> Conflict:
    clashes = (
        await repo.session.scalars(
            repo.base().where(
                TimeSlot.practitioner_id == slot.practitioner_id,
                TimeSlot.start_time < slot.end_time,
                TimeSlot.end_time > slot.start_time,
            )
        )
    ).all()
    return Conflict(
        "The practitioner already has a time slot overlapping that time.",
        extra={"conflicting_slots": [str(s.id) for s in clashes]},
    )


async def create_slot(repo: TimeSlotRepository, data: TimeSlotCreate) -> TimeSlot:
    """Open a bookable window for a practitioner (slots of one practitioner never overlap)."""
    await PractitionerRepository(repo.session).get_or_404(data.practitioner_id)
    if data.location_id is not None:
        await LocationRepository(repo.session).get_or_404(data.location_id)
    slot = TimeSlot(**data.model_dump(exclude={"tenant_id"}, mode="python"))
    slot.status = data.status.value
    try:
        async with repo.session.begin_nested():
            repo.session.add(slot)
            await repo.session.flush()
    except IntegrityError as exc:
        if violated_constraint(exc) != SLOT_OVERLAP_CONSTRAINT:
            raise
        raise await _overlapping_slot(repo, slot) from exc
    await repo.session.refresh(slot)
    return slot


async def update_slot(repo: TimeSlotRepository, slot_id: uuid.UUID, data: TimeSlotUpdate) -> TimeSlot:
    """Change a slot's capacity or location; capacity never drops below what is booked."""
    slot = await repo.get_or_404(slot_id)
    sent = changes(data)
    if sent.get("location_id") is not None:
        await LocationRepository(repo.session).get_or_404(sent["location_id"])
    if sent.get("capacity") is not None and sent["capacity"] < slot.booked_count:
        raise Conflict(f"The slot already has {slot.booked_count} bookings; capacity cannot go below that.")
    if "capacity" in sent and sent["capacity"] is None:
        sent.pop("capacity")
    for field, value in sent.items():
        setattr(slot, field, value)
    return await repo.save(slot)


async def set_slot_status(repo: TimeSlotRepository, slot_id: uuid.UUID, status: SlotStatus) -> TimeSlot:
    """Block (no new bookings; existing ones stay) or unblock a slot."""
    slot = await repo.get_or_404(slot_id)
    if slot.status == status.value:
        raise Conflict(f"The time slot is already {status.value}.")
    slot.status = status.value
    return await repo.save(slot)


async def delete_slot(repo: TimeSlotRepository, slot_id: uuid.UUID) -> None:
    """Remove a slot nobody is booked into (otherwise block it, or cancel the bookings first)."""
    slot = await repo.get_or_404(slot_id)
    if await AppointmentRepository(repo.session).in_slot(slot.id):
        raise Conflict("The time slot has active bookings; block it or cancel them first.")
    await repo.delete(slot)


async def slot_listing(
    session: AsyncSession,
    repo: TimeSlotRepository,
    *,
    practitioner_id: uuid.UUID | None,
    location_id: uuid.UUID | None,
    start_date: date | None,
    end_date: date | None,
    status: SlotStatus | None,
    available_only: bool,
) -> Select[TimeSlot]:
    """Slots filtered by practitioner, location, local date range, status and availability."""
    tz = ZoneInfo(await tenant_timezone(session, session.info["tenant_id"]))
    start_from = datetime.combine(start_date, time(), tz) if start_date else None
    start_before = datetime.combine(end_date + timedelta(days=1), time(), tz) if end_date else None
    stmt = repo.filtered(
        practitioner_id=practitioner_id,
        location_id=location_id,
        start_from=start_from,
        start_before=start_before,
        status=status,
        available_only=available_only,
    )
    if available_only:
        stmt = stmt.where(TimeSlot.start_time >= datetime.now(UTC))
    return stmt
