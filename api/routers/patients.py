"""Patients API (`/patients`).

Fixed paths (`/search`, `/mrn/{mrn}`, `/merge`, `/stats/demographics`) are declared before `/{patient_id}`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.content_rules import rules
from api.deps import (
    CanMerge,
    CanRead,
    CanWrite,
    CurrentPrincipal,
    SessionDep,
    TenantReadsDep,
    ensure_own_tenant,
)
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.errors import NotFound
from core.pagination import PageDep, PageParams, paginate
from domain.communications.schemas import CommunicationResponse
from domain.enums import AppointmentStatus, Channel, Direction, PatientStatus
from domain.patients import reads as patient_reads
from domain.patients import service
from domain.patients.duplicates import find_duplicates
from domain.patients.repository import PatientRepository
from domain.patients.schemas import (
    DuplicateCandidate,
    PatientAdvancedSearch,
    PatientCreate,
    PatientDeleteResponse,
    PatientDemographicsResponse,
    PatientResponse,
    PatientSearchType,
    PatientSimpleListResponse,
    PatientSimpleResponse,
    PatientUpdate,
)
from domain.records import merge, overview
from domain.records import reads as record_reads
from domain.records.repository import PatientRecordRepository
from domain.records.schemas import (
    Patient360Response,
    PatientAppointmentListResponse,
    PatientConversationListResponse,
    PatientDetailResponse,
    PatientMergeRequest,
    PatientMergeResponse,
)
from domain.scheduling.schemas import AppointmentResponse
from domain.tickets.schemas import TicketResponse

router = APIRouter(prefix="/patients", tags=["patients"], responses=AUTHENTICATED)
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]
NO_PATIENT = "No such patient in your tenant"
NOT_FOUND = errors(not_found=NO_PATIENT)


# First of the router: its most frequent request (why: `api.app`, where the routers are included).
@router.get(
    "/{patient_id:record_id}",
    response_model=PatientDetailResponse,
    responses=NOT_FOUND,
)
async def get_patient(patient_id: uuid.UUID, reads: TenantReadsDep) -> PatientDetailResponse:
    """A patient's full demographics, with counts of appointments (total and upcoming), active journeys,
    open tickets and messages, and the dates of the last visit and the next appointment."""
    return PatientDetailResponse.model_validate(await record_reads.patient_detail(reads, patient_id))


@router.get(
    "",
    response_model=PatientSimpleListResponse,
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_patients(
    reads: TenantReadsDep,
    principal: CurrentPrincipal,
    page: PageDep,
    tenant_id: TenantFilter = None,
    search: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Search by name, phone, email or MRN")
    ] = None,
    status: Annotated[PatientStatus | None, Query(description="active, inactive or deceased")] = None,
) -> PatientSimpleListResponse:
    """List your patients, optionally filtered by status or a search over name (typo-tolerant), phone, email
    and MRN. With a search, the closest name matches come first; otherwise patients are sorted by name."""
    ensure_own_tenant(principal, tenant_id)
    rows, total = await patient_reads.list_patients(reads, page, search=search, status=status)
    items = [PatientSimpleResponse.model_validate(r) for r in rows]
    return PatientSimpleListResponse.build(items, total, page)


@router.get(
    "/search",
    response_model=list[PatientSimpleResponse],
    openapi_extra=rules("A phone search has at least 2 digits."),
)
async def search_patients(
    reads: TenantReadsDep,
    query: Annotated[str, Query(min_length=2, max_length=100, description="At least 2 characters")],
    search_type: Annotated[
        PatientSearchType, Query(alias="type", description="What to match: name, phone, mrn or email")
    ] = PatientSearchType.NAME,
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum results")] = 20,
) -> list[PatientSimpleResponse]:
    """Quick search, best matches first. `name` tolerates typos ("Jon Smyth" finds "John Smith"); `phone`
    matches any part of the number, however it is typed; `mrn` matches exactly or as a prefix, in any
    case; `email` matches any part of the address, in any case."""
    rows = await patient_reads.quick_search(reads, query, search_type, limit)
    return [PatientSimpleResponse.model_validate(r) for r in rows]


@router.post(
    "/search",
    response_model=PatientSimpleListResponse,
    dependencies=[CanRead],
    openapi_extra=rules("A phone search has at least 2 digits."),
)
async def advanced_search_patients(
    body: PatientAdvancedSearch, session: SessionDep
) -> PatientSimpleListResponse:
    """Advanced search: every criterion given must match. Names and MRN match as prefixes (any case), phone
    and email as any part; `created_from`/`created_to` are inclusive. Paginated with `page`/`page_size`."""
    repo = PatientRepository(session)
    params = PageParams(page=body.page, page_size=body.page_size)
    rows, total = await repo.page(repo.advanced(body), params)
    items = [PatientSimpleResponse.model_validate(r) for r in rows]
    return PatientSimpleListResponse.build(items, total, params)


@router.get("/mrn/{mrn}", response_model=PatientResponse, dependencies=[CanRead], responses=NOT_FOUND)
async def get_patient_by_mrn(mrn: str, session: SessionDep) -> PatientResponse:
    """The patient with this medical record number (MRNs are matched regardless of case)."""
    patient = await PatientRepository(session).by_mrn(mrn)
    if patient is None:
        raise NotFound("Patient not found.")
    return PatientResponse.model_validate(patient)


@router.post(
    "/merge",
    response_model=PatientMergeResponse,
    dependencies=[CanMerge],
    responses=errors(
        not_found=NO_PATIENT, conflict="Merging a patient into itself, or a record that is already merged"
    ),
)
async def merge_patients(body: PatientMergeRequest, session: SessionDep) -> PatientMergeResponse:
    """Merge a duplicate record into the primary one. Every appointment, message, ticket and journey
    instance of the duplicate moves to the primary, as do its channel consents (an opt-out on either
    record wins). The duplicate becomes `inactive` with `merged_into_id` set. All or nothing."""
    result = await merge.merge_patients(
        PatientRepository(session),
        PatientRecordRepository(session),
        primary_id=body.primary_patient_id,
        duplicate_id=body.duplicate_patient_id,
    )
    return PatientMergeResponse(
        primary_patient_id=result.primary_patient_id,
        merged_patient_id=result.merged_patient_id,
        merged_at=result.merged_at,
        moved=result.moved,
    )


@router.get(
    "/stats/demographics",
    response_model=PatientDemographicsResponse,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def patient_demographics(
    session: SessionDep, principal: CurrentPrincipal, tenant_id: TenantFilter = None
) -> PatientDemographicsResponse:
    """How many patients you have, by status, gender, age group, preferred channel and language, and
    how many registered this month. Merged duplicates are not counted."""
    ensure_own_tenant(principal, tenant_id)
    return await service.demographics(PatientRepository(session), principal.tenant_id)


@router.post(
    "",
    response_model=PatientResponse,
    status_code=201,
    dependencies=[CanWrite],
    responses=errors(conflict="MRN already used by another patient", forbidden=FOREIGN_TENANT),
)
async def create_patient(
    body: PatientCreate, session: SessionDep, principal: CurrentPrincipal
) -> PatientResponse:
    """Register a patient. Phone numbers are stored in E.164 and emails lower-cased; the MRN is generated
    (`MRN-` and 10 characters) when omitted. New patients are `active`."""
    ensure_own_tenant(principal, body.tenant_id)
    patient = await service.create_patient(PatientRepository(session), body)
    return PatientResponse.model_validate(patient)


@router.patch(
    "/{patient_id:record_id}",
    response_model=PatientResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_PATIENT, conflict="MRN already used, or a merged record's status changed"),
)
async def update_patient(patient_id: uuid.UUID, body: PatientUpdate, session: SessionDep) -> PatientResponse:
    """Partial update: only the fields sent change. `status` may be set to active, inactive or deceased,
    except on a record merged into another."""
    patient = await service.update_patient(PatientRepository(session), patient_id, body)
    return PatientResponse.model_validate(patient)


@router.delete(
    "/{patient_id:record_id}",
    response_model=PatientDeleteResponse,
    dependencies=[CanWrite],
    responses=errors(409, not_found=NO_PATIENT),
)
async def delete_patient(patient_id: uuid.UUID, session: SessionDep) -> PatientDeleteResponse:
    """Soft delete: the patient becomes `inactive` (a deceased patient stays `deceased`). Nothing is
    removed; `POST /patients/{id}/activate` undoes it."""
    patient = await service.soft_delete_patient(PatientRepository(session), patient_id)
    return PatientDeleteResponse(patient_id=patient.id)


@router.post(
    "/{patient_id:record_id}/activate",
    response_model=PatientResponse,
    dependencies=[CanMerge],  # the role table (docs/api/authentication.md): reactivating goes with merging
    responses=errors(
        not_found=NO_PATIENT, conflict="The patient was merged into another record, or is deceased"
    ),
)
async def activate_patient(patient_id: uuid.UUID, session: SessionDep) -> PatientResponse:
    """Reactivate an inactive patient (already active: no change). A record merged into another cannot be
    reactivated, nor can a deceased patient (correct a wrong `deceased` status with PATCH)."""
    patient = await service.activate_patient(PatientRepository(session), patient_id)
    return PatientResponse.model_validate(patient)


@router.get(
    "/{patient_id:record_id}/360",
    response_model=Patient360Response,
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def patient_360(patient_id: uuid.UUID, session: SessionDep) -> Patient360Response:
    """Everything about a patient on one screen: demographics, the 10 latest appointments, active
    journeys, open tickets, the 10 latest messages, counts (`recent_communications`: last 30 days) and
    the last visit and next appointment dates."""
    records = PatientRecordRepository(session)
    view = await overview.patient_overview(PatientRepository(session), records, patient_id)
    stats = view.statistics
    return Patient360Response(
        patient=PatientResponse.model_validate(view.patient),
        appointments=[AppointmentResponse.model_validate(a) for a in view.appointments],
        journeys=view.journeys,
        tickets=[TicketResponse.model_validate(t) for t in view.tickets],
        communications=[CommunicationResponse.model_validate(c) for c in view.communications],
        total_appointments=stats.total_appointments,
        upcoming_appointments=stats.upcoming_appointments,
        active_journeys=stats.active_journeys,
        open_tickets=stats.open_tickets,
        recent_communications=stats.recent_communications,
        last_visit_date=stats.last_visit_date,
        next_appointment_date=stats.next_appointment_date,
    )


@router.get(
    "/{patient_id:record_id}/duplicates",
    response_model=list[DuplicateCandidate],
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def patient_duplicates(
    patient_id: uuid.UUID,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum candidates")] = 10,
) -> list[DuplicateCandidate]:
    """Records that may be the same person, most likely first. `score` (0..1) weighs name similarity,
    phone, email and date of birth; `reasons` says what matched. Merged records are never candidates."""
    repo = PatientRepository(session)
    patient = await repo.get_or_404(patient_id)
    return [
        DuplicateCandidate(
            patient=PatientSimpleResponse.model_validate(d.patient), score=d.score, reasons=d.reasons
        )
        for d in await find_duplicates(repo, patient, limit)
    ]


@router.get(
    "/{patient_id:record_id}/appointments",
    response_model=PatientAppointmentListResponse,
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def patient_appointments(
    patient_id: uuid.UUID,
    session: SessionDep,
    page: PageDep,
    status: AppointmentStatus | None = None,
    upcoming: Annotated[
        bool | None, Query(description="true: future booked/confirmed ones, soonest first; false: past ones")
    ] = None,
) -> PatientAppointmentListResponse:
    """The patient's appointments, latest first (soonest first with `upcoming=true`)."""
    patient = await PatientRepository(session).get_or_404(patient_id)
    stmt = PatientRecordRepository(session).appointments_of(patient.id, status=status, upcoming=upcoming)
    rows, total = await paginate(session, stmt, page)
    items = [AppointmentResponse.model_validate(r) for r in rows]
    return PatientAppointmentListResponse.build(items, total, page)


@router.get(
    "/{patient_id:record_id}/conversations",
    response_model=PatientConversationListResponse,
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def patient_conversations(
    patient_id: uuid.UUID,
    session: SessionDep,
    page: PageDep,
    channel: Channel | None = None,
    direction: Direction | None = None,
) -> PatientConversationListResponse:
    """The patient's messages, inbound and outbound, newest first; filter by channel or direction."""
    patient = await PatientRepository(session).get_or_404(patient_id)
    stmt = PatientRecordRepository(session).conversations_of(patient.id, channel=channel, direction=direction)
    rows, total = await paginate(session, stmt, page)
    items = [CommunicationResponse.model_validate(r) for r in rows]
    return PatientConversationListResponse.build(items, total, page)
