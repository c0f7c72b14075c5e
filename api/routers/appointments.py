"""Appointments API (`/appointments`): booking, day and upcoming lists, stats, conflicts, chat booking."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from api.content_rules import rules
from api.deps import (
    CanDelete,
    CanRead,
    CanWrite,
    CurrentPrincipal,
    SessionDep,
    TenantReadsDep,
    ensure_own_tenant,
)
from api.errors import ErrorDetail
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, Responses, errors
from core.pagination import PageDep
from core.reads import TenantReads
from domain.enums import AppointmentStatus
from domain.scheduling import booking, lifecycle, overview, service
from domain.scheduling import reads as appointment_reads
from domain.scheduling.booking_schemas import (
    FindSlotsRequest,
    FindSlotsResponse,
    SelectSlotRequest,
    SelectSlotResponse,
)
from domain.scheduling.repository import AppointmentRepository, tenant_timezone
from domain.scheduling.schemas import (
    AppointmentDetailResponse,
    AppointmentDirectCreate,
    AppointmentListResponse,
    AppointmentResponse,
    AppointmentStats,
    AppointmentUpdate,
    ConflictCheckResponse,
    ConflictingAppointment,
)
from domain.schemas import AwareInstant, Day

log = logging.getLogger(__name__)
router = APIRouter(prefix="/appointments", tags=["appointments"], responses=AUTHENTICATED)
NO_APPOINTMENT = "No such appointment in your tenant"
UNKNOWN_REFERENCE = "Unknown patient, practitioner, location or time slot"
CLASH = (
    "The time clashes with another appointment (listed in `conflicting_appointments`) or a full or blocked "
    "slot, or the patient or practitioner is not active"
)


class AppointmentClash(ErrorDetail):
    """A 409 of a booking or a move: `detail` says why; a clash with the practitioner's other appointments
    lists them in `conflicting_appointments` (empty for a full or blocked slot, or an inactive person)."""

    conflicting_appointments: list[ConflictingAppointment] = Field(default_factory=list)


def clashes(description: str) -> Responses:
    """A 409 declared with `AppointmentClash`, the body a booking's clash comes with."""
    return {409: {"model": AppointmentClash, "description": description}}


# First of the router: its most frequent request (why: `api.app`, where the routers are included).
@router.get(
    "/{appointment_id:record_id}",
    response_model=AppointmentResponse,
    responses=errors(not_found=NO_APPOINTMENT),
)
async def get_appointment(appointment_id: uuid.UUID, reads: TenantReadsDep) -> AppointmentResponse:
    """One appointment."""
    return AppointmentResponse.model_validate(await appointment_reads.appointment(reads, appointment_id))


@router.get("", response_model=AppointmentListResponse, dependencies=[CanRead])
async def list_appointments(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    location_id: uuid.UUID | None = None,
    status: AppointmentStatus | None = None,
    start_date: Annotated[Day | None, Query(description="From this local date (YYYY-MM-DD)")] = None,
    end_date: Annotated[Day | None, Query(description="To this local date, inclusive")] = None,
) -> AppointmentListResponse:
    """List appointments, filtered by patient, practitioner, location, status and the clinic's local dates."""
    repo = AppointmentRepository(session)
    stmt = repo.filtered(
        tenant_tz=await tenant_timezone(session, principal.tenant_id),
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        location_id=location_id,
        status=status.value if status else None,
        start_date=start_date,
        end_date=end_date,
    )
    rows, total = await repo.page(stmt, page)
    return AppointmentListResponse.build([AppointmentResponse.model_validate(r) for r in rows], total, page)


@router.get("/today", response_model=list[AppointmentDetailResponse])
async def todays_appointments(
    reads: TenantReadsDep,
    practitioner_id: uuid.UUID | None = None,
    location_id: uuid.UUID | None = None,
    status: AppointmentStatus | None = None,
) -> list[AppointmentDetailResponse]:
    """Today's appointments, where today is each location's local day (else the tenant's)."""
    rows = await appointment_reads.todays_appointments(
        reads,
        practitioner_id=practitioner_id,
        location_id=location_id,
        status=status.value if status else None,
    )
    return [AppointmentDetailResponse.model_validate(row) for row in rows]


@router.get("/upcoming", response_model=list[AppointmentDetailResponse])
async def upcoming_appointments(
    reads: TenantReadsDep,
    limit: Annotated[int, Query(ge=1, le=50, description="Max results (max 50)")] = 10,
    patient_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
) -> list[AppointmentDetailResponse]:
    """The next active appointments from now on, soonest first."""
    rows = await appointment_reads.upcoming_appointments(
        reads, limit=limit, patient_id=patient_id, practitioner_id=practitioner_id
    )
    return [AppointmentDetailResponse.model_validate(row) for row in rows]


@router.get(
    "/stats",
    response_model=AppointmentStats,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def appointment_stats(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")] = None,
    start_date: Day | None = None,
    end_date: Day | None = None,
) -> AppointmentStats:
    """Counts for dashboards: total, today, upcoming, completed, cancelled, no-show, by status and by type."""
    ensure_own_tenant(principal, tenant_id)
    return await overview.appointment_stats(session, start_date=start_date, end_date=end_date)


@router.get(
    "/conflicts",
    response_model=ConflictCheckResponse,
    dependencies=[CanRead],
    responses=errors(not_found="No such practitioner in your tenant"),
    openapi_extra=rules("`end_time` is after `start_time`."),
)
async def check_conflicts(
    session: SessionDep,
    practitioner_id: uuid.UUID,
    start_time: AwareInstant,
    end_time: AwareInstant,
    exclude_appointment_id: uuid.UUID | None = None,
) -> ConflictCheckResponse:
    """Pre-flight check: the practitioner's active appointments overlapping the proposed time."""
    return await service.check_conflicts(
        session,
        practitioner_id=practitioner_id,
        start_time=start_time,
        end_time=end_time,
        exclude_appointment_id=exclude_appointment_id,
    )


@router.post(
    "/find-slots",
    response_model=FindSlotsResponse,
    dependencies=[CanWrite],
    responses=errors(409, not_found=UNKNOWN_REFERENCE, forbidden=FOREIGN_TENANT),
)
async def find_slots(
    body: FindSlotsRequest, session: SessionDep, principal: CurrentPrincipal
) -> FindSlotsResponse:
    """Start a booking conversation: find open slots, hold them briefly, send the patient a numbered list."""
    ensure_own_tenant(principal, body.tenant_id)
    return await booking.find_slots(session, body)


@router.post(
    "/select-slot",
    response_model=SelectSlotResponse,
    dependencies=[CanWrite],
    responses={
        **errors(not_found="No such booking conversation", forbidden=FOREIGN_TENANT),
        **clashes("The conversation has ended, or the chosen time was just taken"),
    },
)
async def select_slot(
    body: SelectSlotRequest, session: SessionDep, principal: CurrentPrincipal
) -> SelectSlotResponse:
    """Process the patient's reply ("2", "the second one", "14:30"): book it, or say why not and re-offer."""
    ensure_own_tenant(principal, body.tenant_id)
    return await booking.select_slot(session, body)


@router.post(
    "",
    response_model=AppointmentDetailResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses={**errors(not_found=UNKNOWN_REFERENCE, forbidden=FOREIGN_TENANT), **clashes(CLASH)},
)
async def create_appointment(
    body: AppointmentDirectCreate, session: SessionDep, principal: CurrentPrincipal
) -> AppointmentDetailResponse:
    """Book directly (web portal, front desk): into a `time_slot_id`, or a practitioner's start/end time."""
    ensure_own_tenant(principal, body.tenant_id)
    appointment = await service.book_appointment(session, body)
    await session.flush()
    details = await appointment_reads.appointment_details(await TenantReads.within(session), appointment.id)
    return AppointmentDetailResponse.model_validate(details)


@router.patch(
    "/{appointment_id:record_id}",
    response_model=AppointmentResponse,
    dependencies=[CanWrite],
    responses={
        **errors(not_found=NO_APPOINTMENT),
        **clashes("A status move that is not allowed, or a new time that clashes (as when booking)"),
    },
)
async def update_appointment(
    appointment_id: uuid.UUID, body: AppointmentUpdate, session: SessionDep
) -> AppointmentResponse:
    """Partial update: details, a reschedule (new start/end or a new slot), or a status change.

    Status follows booked -> confirmed -> checked_in -> completed, with cancelled and no_show; any other
    transition is 409. A reschedule moves the pending reminders.
    """
    appointment = await lifecycle.update_appointment(session, appointment_id, body)
    return AppointmentResponse.model_validate(appointment)


@router.post(
    "/{appointment_id:record_id}/cancel",
    response_model=AppointmentResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_APPOINTMENT, conflict="Already cancelled, completed or a no-show"),
)
async def cancel_appointment(
    appointment_id: uuid.UUID,
    session: SessionDep,
    notify_patient: Annotated[bool, Query(description="Send a cancellation notification")] = True,
) -> AppointmentResponse:
    """Cancel: frees the slot, stops reminders, tells the patient (unless told not), offers the waitlist."""
    appointment = await lifecycle.cancel_appointment(session, appointment_id, notify_patient=notify_patient)
    return AppointmentResponse.model_validate(appointment)


@router.delete(
    "/{appointment_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(409, not_found=NO_APPOINTMENT),
)
async def delete_appointment(appointment_id: uuid.UUID, session: SessionDep) -> Response:
    """Permanently remove an appointment. Prefer cancelling, which keeps the history."""
    await lifecycle.delete_appointment(session, appointment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
