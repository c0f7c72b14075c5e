"""Journey definitions API (`/journeys`): journeys and their stages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.content_rules import rules
from api.deps import CanRead, CanWrite, CurrentPrincipal, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.journeys import service
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import (
    JourneyCreate,
    JourneyListResponse,
    JourneyResponse,
    JourneyStageCreate,
    JourneyStageResponse,
    JourneyStageUpdate,
    JourneyUpdate,
)

router = APIRouter(prefix="/journeys", tags=["journeys"], responses=AUTHENTICATED)
NO_JOURNEY = "No such journey in your tenant"
USABLE_TEMPLATES = (
    "An action's template is a built-in one or an active one of your tenant, and its text gives every "
    "variable the template uses."
)
UNUSABLE_STAGE = "Unknown trigger or action, a template you cannot use, or a missing template variable"
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]


@router.get(
    "", response_model=JourneyListResponse, dependencies=[CanRead], responses=errors(forbidden=FOREIGN_TENANT)
)
async def list_journeys(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    tenant_id: TenantFilter = None,
    journey_type: Annotated[str | None, Query(max_length=64, description="Filter by type")] = None,
    is_default: Annotated[bool | None, Query(description="Filter default journeys")] = None,
) -> JourneyListResponse:
    """List journey definitions (with their stages), newest first."""
    ensure_own_tenant(principal, tenant_id)
    repo = JourneyRepository(session)
    rows, total = await repo.page(repo.filtered(journey_type=journey_type, is_default=is_default), page)
    return JourneyListResponse.build(await service.journey_views(repo, rows), total, page)


@router.post(
    "",
    response_model=JourneyResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        409,
        unprocessable="Unknown trigger or action, missing template variable, duplicate order_index",
        forbidden=FOREIGN_TENANT,
    ),
    openapi_extra=rules(USABLE_TEMPLATES),
)
async def create_journey(
    body: JourneyCreate, session: SessionDep, principal: CurrentPrincipal
) -> JourneyResponse:
    """Create a journey definition with its stages.

    Each stage has a `trigger_event` (`manual`, `immediate`, `delay`, `before_appointment`,
    `after_appointment`, `reply_received`) and a list of `actions` (`send_message`, `create_ticket`,
    `schedule_reminder`, `wait_for_reply`). A message names a `template_id` (a built-in template or one of
    your tenant's active templates, see `GET /communications/templates`) or gives literal `text`, and must
    supply every variable the template needs except those the system fills: patient_name,
    patient_first_name, practitioner_name, appointment_date, appointment_time, clinic_name. Otherwise the
    answer is 422, naming the stage (order_index) and the action's index. Patients placed on the journey
    keep the template text it had when they were placed, whatever later edits do to your templates."""
    ensure_own_tenant(principal, body.tenant_id)
    repo = JourneyRepository(session)
    journey = await service.create_journey(repo, body)
    return await service.journey_view(repo, journey)


@router.get(
    "/{journey_id:record_id}",
    response_model=JourneyResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_JOURNEY),
)
async def get_journey(journey_id: uuid.UUID, session: SessionDep) -> JourneyResponse:
    """One journey definition with its stages in order."""
    repo = JourneyRepository(session)
    return await service.journey_view(repo, await repo.get_or_404(journey_id))


@router.patch(
    "/{journey_id:record_id}",
    response_model=JourneyResponse,
    dependencies=[CanWrite],
    responses=errors(409, not_found=NO_JOURNEY),
)
async def update_journey(journey_id: uuid.UUID, body: JourneyUpdate, session: SessionDep) -> JourneyResponse:
    """Partial update of the journey's own fields. Running instances keep the definition they started with."""
    repo = JourneyRepository(session)
    journey = await service.update_journey(repo, journey_id, body)
    return await service.journey_view(repo, journey)


@router.post(
    "/{journey_id:record_id}/stages",
    response_model=JourneyStageResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        not_found=NO_JOURNEY,
        conflict="Another stage already has that order_index",
        unprocessable=UNUSABLE_STAGE,
    ),
    openapi_extra=rules(USABLE_TEMPLATES),
)
async def add_stage(
    journey_id: uuid.UUID, body: JourneyStageCreate, session: SessionDep
) -> JourneyStageResponse:
    """Add a stage to a journey. Only instances started afterwards include it.

    Its messages are checked as when a journey is created (422 for a template that is neither built-in nor
    one of your tenant's active templates, or a missing variable)."""
    stage = await service.add_stage(JourneyRepository(session), journey_id, body)
    return JourneyStageResponse.model_validate(stage)


@router.patch(
    "/{journey_id:record_id}/stages/{stage_id:record_id}",
    response_model=JourneyStageResponse,
    dependencies=[CanWrite],
    responses=errors(
        not_found="No such journey or stage in your tenant",
        conflict="Another stage already has that order_index",
        unprocessable=UNUSABLE_STAGE,
    ),
    openapi_extra=rules(USABLE_TEMPLATES),
)
async def update_stage(
    journey_id: uuid.UUID, stage_id: uuid.UUID, body: JourneyStageUpdate, session: SessionDep
) -> JourneyStageResponse:
    """Partial update of a stage: only the fields sent change. New `actions` are checked as when a journey
    is created (422 for an unknown or inactive template, or a missing variable)."""
    stage = await service.update_stage(JourneyRepository(session), journey_id, stage_id, body)
    return JourneyStageResponse.model_validate(stage)
