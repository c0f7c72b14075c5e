"""Tickets API (`/tickets`): follow-up tasks about patients, each with an SLA clock kept by a workflow."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.enums import TicketPriority, TicketStatus
from domain.journeys.repository import JourneyInstanceRepository
from domain.tickets import service
from domain.tickets.repository import TicketRepository
from domain.tickets.schemas import (
    TicketCreate,
    TicketEventResponse,
    TicketListResponse,
    TicketResponse,
    TicketUpdate,
)

router = APIRouter(prefix="/tickets", tags=["tickets"], responses=AUTHENTICATED)
NOT_FOUND = errors(not_found="No such ticket in your tenant")
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]


@router.get(
    "", response_model=TicketListResponse, dependencies=[CanRead], responses=errors(forbidden=FOREIGN_TENANT)
)
async def list_tickets(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    tenant_id: TenantFilter = None,
    patient_id: uuid.UUID | None = None,
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    assigned_to: uuid.UUID | None = None,
    category: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    journey_instance_id: uuid.UUID | None = None,
    breached: Annotated[bool | None, Query(description="Only tickets that missed (or met) a target")] = None,
) -> TicketListResponse:
    """List tickets, newest first, filtered by patient, status, priority, assignee, category, journey
    instance or SLA breach."""
    ensure_own_tenant(principal, tenant_id)
    repo = TicketRepository(session)
    stmt = repo.filtered(
        patient_id=patient_id,
        status=status.value if status else None,
        priority=priority.value if priority else None,
        assigned_to=assigned_to,
        category=category,
        journey_instance_id=journey_instance_id,
        breached=breached,
    )
    rows, total = await repo.page(stmt, page)
    return TicketListResponse.build([TicketResponse.model_validate(r) for r in rows], total, page)


@router.post(
    "",
    response_model=TicketResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(409, not_found="Patient or journey instance not found", forbidden=FOREIGN_TENANT),
)
async def create_ticket(
    body: TicketCreate, session: SessionDep, principal: CurrentPrincipal
) -> TicketResponse:
    """Open a ticket. Its SLA clock starts now: `response_due_at` and `resolution_due_at` are set within
    moments by its workflow, from the tenant's targets for the priority, in business hours."""
    ensure_own_tenant(principal, body.tenant_id)
    journey_patient_id = None
    if body.journey_instance_id is not None:
        instance = await JourneyInstanceRepository(session).get_or_404(body.journey_instance_id)
        journey_patient_id = instance.patient_id
    ticket = await service.open_ticket(
        session, body, actor=principal.sub, journey_patient_id=journey_patient_id
    )
    return TicketResponse.model_validate(ticket)


@router.get(
    "/{ticket_id:record_id}", response_model=TicketResponse, dependencies=[CanRead], responses=NOT_FOUND
)
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep) -> TicketResponse:
    """One ticket, with its SLA due times and breach flags."""
    return TicketResponse.model_validate(await TicketRepository(session).get_or_404(ticket_id))


@router.patch(
    "/{ticket_id:record_id}",
    response_model=TicketResponse,
    dependencies=[CanWrite],
    responses=errors(not_found="No such ticket in your tenant", conflict="The status cannot move that way"),
)
async def update_ticket(
    ticket_id: uuid.UUID,
    body: TicketUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> TicketResponse:
    """Partial update. Status moves: open -> in_progress / waiting_on_patient (the SLA clock pauses) ->
    resolved -> closed; resolved or closed -> open reopens (a new SLA cycle). Leaving `open` records the
    first response."""
    ticket = await service.update_ticket(session, ticket_id, body, actor=principal.sub)
    return TicketResponse.model_validate(ticket)


@router.get(
    "/{ticket_id:record_id}/events",
    response_model=list[TicketEventResponse],
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def list_ticket_events(ticket_id: uuid.UUID, session: SessionDep) -> list[TicketEventResponse]:
    """The ticket's history: creation, changes, first response, SLA pauses and escalations."""
    return [TicketEventResponse.model_validate(e) for e in await service.ticket_events(session, ticket_id)]
