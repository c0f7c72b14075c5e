"""Journey instances API: served at `/journeys/instances` and (legacy) `/instances`.

Included before the journeys router, so `/journeys/instances/...` never reads as `/journeys/{journey_id}`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.content_rules import rules
from api.deps import (
    CanRead,
    CanWrite,
    CurrentPrincipal,
    GatewayDep,
    IdempotencyKey,
    SessionDep,
    TenantReadsDep,
    ensure_own_tenant,
)
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.enums import JourneyInstanceStatus
from domain.journeys import advance, service
from domain.journeys import reads as journey_reads
from domain.journeys.repository import JourneyInstanceRepository
from domain.journeys.schemas import (
    AdvancedStage,
    AdvanceStageRequest,
    AdvanceStageResponse,
    JourneyInstanceCreate,
    JourneyInstanceListResponse,
    JourneyInstanceResponse,
    JourneyInstanceStats,
    JourneyInstanceWithStages,
)

router = APIRouter(tags=["journey instances"], responses=AUTHENTICATED)
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]
NO_INSTANCE = "No such journey instance in your tenant"


@router.get("", response_model=JourneyInstanceListResponse, dependencies=[CanRead])
async def list_instances(
    session: SessionDep,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    journey_id: uuid.UUID | None = None,
    status: JourneyInstanceStatus | None = None,
) -> JourneyInstanceListResponse:
    """List journey instances, newest first, filtered by patient, journey or status."""
    repo = JourneyInstanceRepository(session)
    stmt = repo.filtered(
        patient_id=patient_id, journey_id=journey_id, status=status.value if status else None
    )
    rows, total = await repo.page(stmt, page)
    return JourneyInstanceListResponse.build(
        [JourneyInstanceResponse.model_validate(r) for r in rows], total, page
    )


@router.get(
    "/stats",
    response_model=JourneyInstanceStats,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def instance_stats(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: TenantFilter = None,
    journey_id: uuid.UUID | None = None,
) -> JourneyInstanceStats:
    """Counts of instances: total, active, completed, cancelled, by status, and by journey name."""
    ensure_own_tenant(principal, tenant_id)
    return await service.instance_stats(JourneyInstanceRepository(session), journey_id)


@router.post(
    "",
    response_model=JourneyInstanceResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses={
        200: {"description": "An instance created earlier under the same Idempotency-Key"},
        **errors(
            not_found="Unknown journey, patient or appointment",
            conflict="The journey is inactive, or a template it names is no longer usable",
            forbidden=FOREIGN_TENANT,
        ),
    },
)
async def create_instance(
    body: JourneyInstanceCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JourneyInstanceResponse:
    """Place a patient on a journey (201) and start its workflow.

    With an `Idempotency-Key` header, a repeated request returns the instance the first one created, with
    status 200, and starts nothing. The workflow's start is saved with the instance: while Temporal is
    unreachable the answer is still 201, and the workflow starts as soon as Temporal is back."""
    ensure_own_tenant(principal, body.tenant_id)
    instance, created = await service.create_instance(session, body, idempotency_key=idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
    return JourneyInstanceResponse.model_validate(instance)


@router.get(
    "/{instance_id:record_id}",
    response_model=JourneyInstanceWithStages,
    responses=errors(not_found=NO_INSTANCE),
)
async def get_instance(instance_id: uuid.UUID, reads: TenantReadsDep) -> JourneyInstanceWithStages:
    """One instance with each stage's status, timestamps and notes."""
    return JourneyInstanceWithStages.model_validate(
        await journey_reads.instance_with_stages(reads, instance_id)
    )


@router.post(
    "/{instance_id:record_id}/advance",
    response_model=AdvanceStageResponse,
    dependencies=[CanWrite],
    responses=errors(
        not_found=NO_INSTANCE,
        conflict="Completed or cancelled; the stage named is not the one waiting; the current stage is not "
        "manual; or another request advanced it first. `detail` and `current_stage` name the current stage.",
        unprocessable="`stage_id` / `order_index` name no stage of this instance",
        unavailable="Temporal is unreachable; retry shortly",
    ),
    openapi_extra=rules("`stage_id` and `order_index`, when given, name a stage of this instance."),
)
async def advance_instance(
    instance_id: uuid.UUID,
    body: AdvanceStageRequest,
    session: SessionDep,
    principal: CurrentPrincipal,
    gateway: GatewayDep,
    idempotency_key: IdempotencyKey = None,
) -> AdvanceStageResponse:
    """Mark a manual stage complete and move to the next stage; returns the new state and the stage advanced.

    Name the stage you mean (`stage_id` or `order_index`): once it has been advanced, by you or anyone, the
    request is 409 rather than advancing the next manual stage. Without either, the stage waiting now is
    advanced; of several such requests at once, exactly one succeeds. With an `Idempotency-Key` header, a
    repeated request returns the first one's outcome (200 with the same `advanced_stage`, and the instance
    as it is now) and advances nothing again."""
    advanced = await advance.advance_instance(
        session, gateway, instance_id, body, requested_by=principal.sub, idempotency_key=idempotency_key
    )
    return AdvanceStageResponse(
        **JourneyInstanceResponse.model_validate(advanced.instance).model_dump(),
        advanced_stage=AdvancedStage.model_validate(advanced.stage),
    )


@router.post(
    "/{instance_id:record_id}/cancel",
    response_model=JourneyInstanceResponse,
    dependencies=[CanWrite],
    responses=errors(
        not_found=NO_INSTANCE,
        conflict="The instance already completed or failed",
    ),
)
async def cancel_instance(instance_id: uuid.UUID, session: SessionDep) -> JourneyInstanceResponse:
    """Take the patient off the journey: pending timers and messages stop for good. Idempotent. The
    cancellation is saved at once; its workflow stops as soon as Temporal has it (after an outage too)."""
    instance = await service.cancel_instance(session, instance_id)
    return JourneyInstanceResponse.model_validate(instance)
