"""Time slots API (`/time-slots`): practitioners' bookable windows, their capacity, blocking them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CanDelete, CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.enums import SlotStatus
from domain.scheduling import slots
from domain.scheduling.repository import TimeSlotRepository
from domain.scheduling.slot_schemas import (
    TimeSlotCreate,
    TimeSlotListResponse,
    TimeSlotResponse,
    TimeSlotUpdate,
)
from domain.schemas import Day

router = APIRouter(prefix="/time-slots", tags=["time slots"], responses=AUTHENTICATED)
NO_SLOT = "No such time slot in your tenant"


@router.get("", response_model=TimeSlotListResponse, dependencies=[CanRead])
async def list_time_slots(
    session: SessionDep,
    page: PageDep,
    practitioner_id: uuid.UUID | None = None,
    location_id: uuid.UUID | None = None,
    start_date: Annotated[Day | None, Query(description="From this date (tenant's local day)")] = None,
    end_date: Annotated[Day | None, Query(description="To this date, inclusive")] = None,
    status: SlotStatus | None = None,
    available_only: Annotated[bool, Query(description="Only open, future slots with a place left")] = False,
) -> TimeSlotListResponse:
    """List time slots by practitioner, location, dates, status, or only those still bookable."""
    repo = TimeSlotRepository(session)
    stmt = await slots.slot_listing(
        session,
        repo,
        practitioner_id=practitioner_id,
        location_id=location_id,
        start_date=start_date,
        end_date=end_date,
        status=status,
        available_only=available_only,
    )
    rows, total = await repo.page(stmt, page)
    return TimeSlotListResponse.build([TimeSlotResponse.model_validate(r) for r in rows], total, page)


@router.get(
    "/{slot_id:record_id}",
    response_model=TimeSlotResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_SLOT),
)
async def get_time_slot(slot_id: uuid.UUID, session: SessionDep) -> TimeSlotResponse:
    """One time slot, with how many of its places are booked."""
    return TimeSlotResponse.model_validate(await TimeSlotRepository(session).get_or_404(slot_id))


@router.post(
    "",
    response_model=TimeSlotResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        not_found="Unknown practitioner or location",
        conflict="Overlaps another slot of the practitioner",
        forbidden=FOREIGN_TENANT,
    ),
)
async def create_time_slot(
    body: TimeSlotCreate, session: SessionDep, principal: CurrentPrincipal
) -> TimeSlotResponse:
    """Open a bookable window for a practitioner (capacity > 1 for group sessions)."""
    ensure_own_tenant(principal, body.tenant_id)
    return TimeSlotResponse.model_validate(await slots.create_slot(TimeSlotRepository(session), body))


@router.patch(
    "/{slot_id:record_id}",
    response_model=TimeSlotResponse,
    dependencies=[CanWrite],
    responses=errors(
        not_found=NO_SLOT, conflict="Overlaps another slot, or a capacity below the bookings already made"
    ),
)
async def update_time_slot(slot_id: uuid.UUID, body: TimeSlotUpdate, session: SessionDep) -> TimeSlotResponse:
    """Change capacity (never below the bookings it has) or location."""
    return TimeSlotResponse.model_validate(
        await slots.update_slot(TimeSlotRepository(session), slot_id, body)
    )


@router.post(
    "/{slot_id:record_id}/block",
    response_model=TimeSlotResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_SLOT, conflict="Already blocked"),
)
async def block_time_slot(slot_id: uuid.UUID, session: SessionDep) -> TimeSlotResponse:
    """Stop new bookings into the slot (existing appointments stay); 409 if already blocked."""
    slot = await slots.set_slot_status(TimeSlotRepository(session), slot_id, SlotStatus.BLOCKED)
    return TimeSlotResponse.model_validate(slot)


@router.post(
    "/{slot_id:record_id}/unblock",
    response_model=TimeSlotResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_SLOT, conflict="Not blocked"),
)
async def unblock_time_slot(slot_id: uuid.UUID, session: SessionDep) -> TimeSlotResponse:
    """Open a blocked slot for booking again; 409 if already open."""
    slot = await slots.set_slot_status(TimeSlotRepository(session), slot_id, SlotStatus.OPEN)
    return TimeSlotResponse.model_validate(slot)


@router.delete(
    "/{slot_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(not_found=NO_SLOT, conflict="The slot has active bookings; block it or cancel them"),
)
async def delete_time_slot(slot_id: uuid.UUID, session: SessionDep) -> Response:
    """Remove a slot nobody is booked into; 409 otherwise (block it instead)."""
    await slots.delete_slot(TimeSlotRepository(session), slot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
