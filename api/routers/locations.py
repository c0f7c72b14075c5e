"""Locations API (`/locations`): where appointments happen, each with its time zone."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.scheduling import slots
from domain.scheduling.repository import LocationRepository
from domain.scheduling.slot_schemas import (
    LocationCreate,
    LocationListResponse,
    LocationResponse,
    LocationUpdate,
)

router = APIRouter(prefix="/locations", tags=["locations"], responses=AUTHENTICATED)
NOT_FOUND = errors(not_found="No such location in your tenant")


@router.get("", response_model=LocationListResponse, dependencies=[CanRead])
async def list_locations(
    session: SessionDep, page: PageDep, is_active: bool | None = None
) -> LocationListResponse:
    """List the tenant's locations by name."""
    repo = LocationRepository(session)
    rows, total = await repo.page(repo.filtered(is_active=is_active), page)
    return LocationListResponse.build([LocationResponse.model_validate(r) for r in rows], total, page)


@router.get(
    "/{location_id:record_id}", response_model=LocationResponse, dependencies=[CanRead], responses=NOT_FOUND
)
async def get_location(location_id: uuid.UUID, session: SessionDep) -> LocationResponse:
    """One location."""
    return LocationResponse.model_validate(await LocationRepository(session).get_or_404(location_id))


@router.post(
    "",
    response_model=LocationResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(409, forbidden=FOREIGN_TENANT),
)
async def create_location(
    body: LocationCreate, session: SessionDep, principal: CurrentPrincipal
) -> LocationResponse:
    """Add a location; its IANA time zone defines the local day of its appointments."""
    ensure_own_tenant(principal, body.tenant_id)
    return LocationResponse.model_validate(await slots.create_location(LocationRepository(session), body))


@router.patch(
    "/{location_id:record_id}",
    response_model=LocationResponse,
    dependencies=[CanWrite],
    responses=errors(409, not_found="No such location in your tenant"),
)
async def update_location(
    location_id: uuid.UUID, body: LocationUpdate, session: SessionDep
) -> LocationResponse:
    """Partial update: only the fields sent are changed (deactivate with `is_active=false`)."""
    location = await slots.update_location(LocationRepository(session), location_id, body)
    return LocationResponse.model_validate(location)
