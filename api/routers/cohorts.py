"""Cohorts API (`/cohorts`): saved patient selections, and a preview of who they hold now."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CanDelete, CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.cohorts import service
from domain.cohorts.repository import CohortRepository
from domain.cohorts.schemas import (
    CohortCreate,
    CohortListResponse,
    CohortPreview,
    CohortResponse,
    CohortUpdate,
)

router = APIRouter(prefix="/cohorts", tags=["cohorts"], responses=AUTHENTICATED)
NO_COHORT = "No such cohort in your tenant"
DUPLICATE_NAME = "Another cohort of your tenant has this name (ignoring case)"
BAD_CRITERIA = (
    "Invalid criteria (unknown key, min above max, days out of range, an empty list, an unknown value), "
    "or a practitioner, location or journey that is not your tenant's; `loc` names the field"
)
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]


@router.get(
    "", response_model=CohortListResponse, dependencies=[CanRead], responses=errors(forbidden=FOREIGN_TENANT)
)
async def list_cohorts(
    session: SessionDep, principal: CurrentPrincipal, page: PageDep, tenant_id: TenantFilter = None
) -> CohortListResponse:
    """List your tenant's cohorts by name."""
    ensure_own_tenant(principal, tenant_id)
    repo = CohortRepository(session)
    rows, total = await repo.page(repo.listed(), page)
    return CohortListResponse.build([CohortResponse.model_validate(r) for r in rows], total, page)


@router.post(
    "",
    response_model=CohortResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(conflict=DUPLICATE_NAME, unprocessable=BAD_CRITERIA, forbidden=FOREIGN_TENANT),
)
async def create_cohort(
    body: CohortCreate, session: SessionDep, principal: CurrentPrincipal
) -> CohortResponse:
    """Save a cohort: a name and the `criteria` its patients meet.

    Every criterion is optional and those given must all hold; a list matches any of its values:
    `age` `{"min", "max"}` (whole years on your tenant's today, inclusive; no birth date never matches),
    `gender` `["female", ...]`, `languages` `["es", ...]` (preferred language; `es` matches `es-MX` too),
    `status` (`active`, `inactive`, `deceased`), `last_visit` `{"not_within_days": 365}` (no completed
    appointment in that many days, never-seen patients included) or `{"never": true}`,
    `has_upcoming_appointment` (true or false), `seen_by` `{"practitioner_ids", "specialities",
    "location_ids", "within_days"}` (a completed appointment matching every list given), `on_journey` /
    `not_on_journey` `{"journey_ids", "state": "active" | "ever"}` (any journey when `journey_ids` is
    omitted), `consent` (`sms`, `whatsapp` or `email`: a channel the patient has not opted out of).
    `{}` holds every patient. Merged duplicates are never members. Membership is evaluated when asked
    (`GET /cohorts/{id}/preview`), never stored."""
    ensure_own_tenant(principal, body.tenant_id)
    return CohortResponse.model_validate(await service.create_cohort(session, body))


@router.get(
    "/{cohort_id:record_id}",
    response_model=CohortResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_COHORT),
)
async def get_cohort(cohort_id: uuid.UUID, session: SessionDep) -> CohortResponse:
    """One cohort with its criteria."""
    return CohortResponse.model_validate(await CohortRepository(session).get_or_404(cohort_id))


@router.patch(
    "/{cohort_id:record_id}",
    response_model=CohortResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_COHORT, conflict=DUPLICATE_NAME, unprocessable=BAD_CRITERIA),
)
async def update_cohort(cohort_id: uuid.UUID, body: CohortUpdate, session: SessionDep) -> CohortResponse:
    """Partial update: only the fields sent change; `criteria`, when sent, replaces the old criteria whole."""
    return CohortResponse.model_validate(await service.update_cohort(session, cohort_id, body))


@router.delete(
    "/{cohort_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(not_found=NO_COHORT, conflict="A campaign was launched with this cohort"),
)
async def delete_cohort(cohort_id: uuid.UUID, session: SessionDep) -> Response:
    """Delete a cohort for good. Its patients are untouched."""
    await service.delete_cohort(session, cohort_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{cohort_id:record_id}/preview",
    response_model=CohortPreview,
    dependencies=[CanRead],
    responses=errors(not_found=NO_COHORT),
)
async def preview_cohort(cohort_id: uuid.UUID, session: SessionDep) -> CohortPreview:
    """Who the cohort holds right now: `count` patients, and a `sample` of the first 20 by last name, first
    name (id, first and last name)."""
    return await service.preview(session, cohort_id, now=datetime.now(UTC))
