"""Practitioners API (`/practitioners`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CanDelete, CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.practitioners import service
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import (
    PractitionerCreate,
    PractitionerListResponse,
    PractitionerResponse,
    PractitionerSimpleResponse,
    PractitionerUpdate,
    display_name,
)

router = APIRouter(prefix="/practitioners", tags=["practitioners"], responses=AUTHENTICATED)
NO_PRACTITIONER = "No such practitioner in your tenant"
NOT_FOUND = errors(not_found=NO_PRACTITIONER)
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]


@router.get(
    "",
    response_model=PractitionerListResponse,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_practitioners(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    tenant_id: TenantFilter = None,
    speciality: Annotated[str | None, Query(max_length=100)] = None,
    is_active: bool | None = None,
    search: Annotated[str | None, Query(min_length=1, max_length=100, description="Search by name")] = None,
) -> PractitionerListResponse:
    """List practitioners, filtered by speciality, active status or a name search."""
    ensure_own_tenant(principal, tenant_id)
    repo = PractitionerRepository(session)
    rows, total = await repo.page(
        repo.filtered(speciality=speciality, is_active=is_active, search=search), page
    )
    items = [PractitionerResponse.model_validate(r) for r in rows]
    return PractitionerListResponse.build(items, total, page)


@router.get(
    "/simple",
    response_model=list[PractitionerSimpleResponse],
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_practitioners_simple(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: TenantFilter = None,
    speciality: Annotated[str | None, Query(max_length=100)] = None,
    active_only: bool = True,
) -> list[PractitionerSimpleResponse]:
    """Minimal practitioner data for dropdowns (id, display name, speciality, active)."""
    ensure_own_tenant(principal, tenant_id)
    repo = PractitionerRepository(session)
    stmt = repo.filtered(speciality=speciality, is_active=True if active_only else None)
    rows = (await session.scalars(stmt)).all()
    return [
        PractitionerSimpleResponse(
            id=r.id,
            name=display_name(r.first_name, r.last_name),
            speciality=r.speciality,
            is_active=r.is_active,
        )
        for r in rows
    ]


@router.get(
    "/specialities",
    response_model=list[str],
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_specialities(
    session: SessionDep, principal: CurrentPrincipal, tenant_id: TenantFilter = None
) -> list[str]:
    """The distinct specialities of the tenant's practitioners, for filters."""
    ensure_own_tenant(principal, tenant_id)
    return await PractitionerRepository(session).specialities()


@router.get(
    "/{practitioner_id:record_id}",
    response_model=PractitionerResponse,
    dependencies=[CanRead],
    responses=NOT_FOUND,
)
async def get_practitioner(practitioner_id: uuid.UUID, session: SessionDep) -> PractitionerResponse:
    """One practitioner."""
    practitioner = await PractitionerRepository(session).get_or_404(practitioner_id)
    return PractitionerResponse.model_validate(practitioner)


@router.post(
    "",
    response_model=PractitionerResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(conflict="License number already used", forbidden=FOREIGN_TENANT),
)
async def create_practitioner(
    body: PractitionerCreate, session: SessionDep, principal: CurrentPrincipal
) -> PractitionerResponse:
    """Add a practitioner to your tenant."""
    ensure_own_tenant(principal, body.tenant_id)
    practitioner = await service.create_practitioner(PractitionerRepository(session), body)
    return PractitionerResponse.model_validate(practitioner)


@router.patch(
    "/{practitioner_id:record_id}",
    response_model=PractitionerResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_PRACTITIONER, conflict="License number already used"),
)
async def update_practitioner(
    practitioner_id: uuid.UUID, body: PractitionerUpdate, session: SessionDep
) -> PractitionerResponse:
    """Partial update: only the fields sent are changed."""
    practitioner = await service.update_practitioner(PractitionerRepository(session), practitioner_id, body)
    return PractitionerResponse.model_validate(practitioner)


@router.delete(
    "/{practitioner_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(
        not_found=NO_PRACTITIONER,
        conflict="The practitioner has appointments; deactivate instead",
    ),
)
async def delete_practitioner(practitioner_id: uuid.UUID, session: SessionDep) -> Response:
    """Permanently remove a practitioner who has no appointments. Prefer `is_active=false`."""
    await service.delete_practitioner(PractitionerRepository(session), practitioner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
