"""Advancing a journey instance's manual stage: exactly once per stage, however many requests ask.

The request names its stage, or the service names the one active now, so the workflow can refuse an advance
that arrives once that stage has moved on (the workflow's validator and handler both check, and the handler
claims the stage before its first await). An Idempotency-Key becomes the Update's id, and Temporal hands a
repeat the first outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.codec import payloads_for_tenant
from core.errors import Conflict, NotFound, Unprocessable
from core.gateway import CommandRejected, UpdateRefused, WorkflowGateway, WorkflowNotRunning
from domain.enums import StageStatus
from domain.journeys.models import JourneyInstance, JourneyInstanceStage
from domain.journeys.plan import AdvanceInput, AdvanceResult
from domain.journeys.repository import JourneyInstanceRepository
from domain.journeys.schemas import AdvanceStageRequest
from domain.journeys.service import ensure_running, workflow_id_of

UPDATE_TIMEOUT = timedelta(seconds=30)  # the Update returns once the journey has moved past the stage


def advance_update_id(idempotency_key: str) -> str:
    """The `advance` Update's id for a request's Idempotency-Key: Temporal runs one Update per id and hands
    a repeat the first one's outcome (even once the workflow has closed)."""
    return f"advance:{idempotency_key}"


@dataclass
class Advanced:
    """What an advance did: the instance now, and the stage it completed."""

    instance: JourneyInstance
    stage: JourneyInstanceStage


async def advance_instance(
    session: AsyncSession,
    gateway: WorkflowGateway,
    instance_id: uuid.UUID,
    request: AdvanceStageRequest,
    *,
    requested_by: str,
    idempotency_key: str | None = None,
) -> Advanced:
    """Complete a manual stage through the workflow's `advance` Update: the one `request` names, or else the
    one active now. Of concurrent advances of one stage exactly one succeeds; the others are 409 naming the
    current stage. Under an `idempotency_key` already used on this instance, the first outcome is returned
    and nothing is advanced again."""
    repo = JourneyInstanceRepository(session)
    instance = await repo.get_or_404(instance_id)
    stages = await repo.stages(instance.id)
    target = _named_stage(stages, request) if request.names_a_stage else None
    update_id = advance_update_id(idempotency_key) if idempotency_key else None
    workflow_id = workflow_id_of(instance)
    try:
        with payloads_for_tenant(instance.tenant_id):  # the update's payload names no tenant
            result = (
                await gateway.update_result(workflow_id, update_id, result_type=AdvanceResult)
                if update_id
                else None
            )
            if result is None:
                ensure_running(instance)
                target = target or _waiting_stage(stages)
                result = await gateway.update(
                    workflow_id,
                    "advance",
                    AdvanceInput(requested_by=requested_by, order_index=target.order_index),
                    update_id=update_id,
                    result_type=AdvanceResult,
                    wait=UPDATE_TIMEOUT,
                )
    except UpdateRefused as exc:
        raise _refused(exc, stages) from exc
    except (WorkflowNotRunning, CommandRejected) as exc:  # not started yet, or closed meanwhile
        await session.refresh(instance)
        ensure_running(instance)
        raise Conflict("The journey's workflow is not running yet; try again shortly.") from exc
    stage = await repo.stage(instance.id, result.order_index)
    if stage is None:  # the workflow runs the instance's own snapshot, so its stages are the instance's
        raise NotFound(f"The journey instance has no stage {result.order_index}.")
    if request.notes and request.notes not in (stage.notes or ""):  # a repeated request adds it once
        # The coordinator's note first, then any the workflow recorded.
        stage.notes = f"{request.notes}\n{stage.notes}" if stage.notes else request.notes
        await session.flush()
    await session.refresh(instance)
    return Advanced(instance=instance, stage=stage)


def _named_stage(stages: list[JourneyInstanceStage], request: AdvanceStageRequest) -> JourneyInstanceStage:
    for stage in stages:
        if (request.stage_id is None or stage.stage_id == request.stage_id) and (
            request.order_index is None or stage.order_index == request.order_index
        ):
            return stage
    raise Unprocessable("The request names no stage of this journey instance (stage_id / order_index).")


def _waiting_stage(stages: list[JourneyInstanceStage]) -> JourneyInstanceStage:
    """The stage active now: what a request that names none means to advance."""
    for stage in stages:
        if stage.status == StageStatus.ACTIVE.value:
            return stage
    raise Conflict("No stage of the journey instance is waiting to be advanced right now; try again shortly.")


def _refused(refusal: UpdateRefused, stages: list[JourneyInstanceStage]) -> Conflict:
    """The 409 for an advance the workflow refused: its reason, and the stage current in the workflow."""
    reason = refusal.message
    details = refusal.details
    current = next((s for s in stages if s.order_index == details[0]), None) if details else None
    if current is None:
        return Conflict(reason)
    return Conflict(
        f'{reason} The current stage is order_index {current.order_index}, "{current.name}".',
        extra={"current_stage": {"order_index": current.order_index, "name": current.name}},
    )
