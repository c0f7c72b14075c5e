"""Journey definitions: journeys and their stages, with the tenant templates their messages name.

A stage's actions are parsed into typed shapes with the request (`triggers`), which cannot see the database:
a message naming a template that is not built-in is let through there and checked here against the caller's
tenant's active templates, with one query per request. Tenant scoping of that query is the session's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound, Unprocessable
from domain.communications import templates
from domain.communications.models import CommunicationTemplate
from domain.journeys.models import Journey, JourneyStage
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import (
    JourneyCreate,
    JourneyResponse,
    JourneyStageCreate,
    JourneyStageResponse,
    JourneyStageUpdate,
    JourneyUpdate,
)
from domain.journeys.trigger_conditions import dump_trigger_conditions
from domain.journeys.triggers import parse_actions, tenant_template_id
from domain.schemas import changes

# ---- the tenant templates a definition names --------------------------------------------------------


@dataclass(frozen=True)
class TemplateUse:
    """A message action that names a tenant template: where it is, and the variables it supplies."""

    order_index: int
    action_index: int
    template_id: str
    variables: dict[str, str]


def template_uses(stages: Iterable[tuple[int, list[Any]]]) -> list[TemplateUse]:
    """The tenant templates named by `(order_index, typed actions)` pairs, in stage and action order."""
    uses = []
    for order_index, actions in sorted(stages, key=lambda stage: stage[0]):
        for action_index, action in enumerate(actions):
            template_id = tenant_template_id(action)
            if template_id is not None:
                uses.append(TemplateUse(order_index, action_index, template_id, dict(action.variables)))
    return uses


async def resolve_template_uses(
    session: AsyncSession, uses: list[TemplateUse]
) -> tuple[dict[str, list[templates.MessageTemplate]], list[str]]:
    """(the active variants of the session tenant's templates that `uses` name, what is wrong with `uses`),
    in one query.

    Each problem names the stage (order_index) and the action's index: a template that is not an active
    template of the tenant, or a variable one of its languages needs that the action does not supply."""
    if not uses:
        return {}, []
    rows = await session.scalars(
        select(CommunicationTemplate)
        .where(
            CommunicationTemplate.key.in_({use.template_id for use in uses}),
            CommunicationTemplate.is_active.is_(True),
        )
        .order_by(CommunicationTemplate.key, CommunicationTemplate.language)
    )
    found: dict[str, list[templates.MessageTemplate]] = {}
    for row in rows:
        found.setdefault(row.key, []).append(templates.from_record(row))
    problems = []
    for use in uses:
        where = f"Stage {use.order_index}, action {use.action_index}"
        variants = found.get(use.template_id)
        if not variants:
            problems.append(
                f"{where}: template_id {use.template_id!r} is neither a built-in template nor an active "
                "template of your tenant."
            )
        elif missing := set().union(*(templates.missing_from(v, use.variables) for v in variants)):
            problems.append(
                f"{where}: missing template variables for {use.template_id!r}: {', '.join(sorted(missing))}."
            )
    return found, problems


async def ensure_known_templates(session: AsyncSession, stages: Iterable[tuple[int, list[Any]]]) -> None:
    """422 when a message names a template that is neither built-in nor the tenant's active one, or misses
    one of its variables."""
    _, problems = await resolve_template_uses(session, template_uses(stages))
    if problems:
        raise Unprocessable(" ".join(problems))


async def templates_to_keep(
    session: AsyncSession, stages: list[JourneyStage]
) -> dict[str, list[templates.MessageTemplate]]:
    """The tenant templates a journey's stages name, every active language of each, as they are now (for a
    new instance's snapshot).

    409 when one of them is no longer usable (deactivated, deleted, or now needs a variable the action does
    not supply): placing a patient on the journey would only fail that stage later."""
    uses = template_uses((s.order_index, parse_actions(s.actions)) for s in stages)
    found, problems = await resolve_template_uses(session, uses)
    if problems:
        raise Conflict(
            "The journey names a template it cannot use: " + " ".join(problems) + " Fix the stage first."
        )
    return found


# ---- journeys and stages ----------------------------------------------------------------------------


def _stage_values(data: JourneyStageCreate | JourneyStageUpdate, fields: set[str] | None = None) -> dict:
    dumped = data.model_dump(mode="json", exclude_unset=fields is not None)
    return {k: v for k, v in dumped.items() if fields is None or k in fields}


async def journey_view(repo: JourneyRepository, journey: Journey) -> JourneyResponse:
    """A journey with its stages in order."""
    stages = (await repo.stages_of([journey.id]))[journey.id]
    return _view(journey, stages)


def _view(journey: Journey, stages: list[JourneyStage]) -> JourneyResponse:
    response = JourneyResponse.model_validate(journey)
    return response.model_copy(update={"stages": [JourneyStageResponse.model_validate(s) for s in stages]})


async def journey_views(repo: JourneyRepository, journeys: list[Journey]) -> list[JourneyResponse]:
    """Several journeys with their stages (one query for the stages)."""
    stages = await repo.stages_of([j.id for j in journeys])
    return [_view(j, stages[j.id]) for j in journeys]


async def create_journey(repo: JourneyRepository, data: JourneyCreate) -> Journey:
    """Add a journey definition and its stages to the caller's tenant (422 for a template it cannot use)."""
    await ensure_known_templates(repo.session, ((s.order_index, s.actions) for s in data.stages))
    journey = Journey(
        **data.model_dump(mode="json", exclude={"tenant_id", "stages", "trigger_conditions"}),
        trigger_conditions=dump_trigger_conditions(data.trigger_conditions),
    )
    await repo.add(journey)
    for stage in data.stages:
        repo.session.add(JourneyStage(journey_id=journey.id, **_stage_values(stage)))
    await repo.session.flush()
    return journey


async def update_journey(repo: JourneyRepository, journey_id: uuid.UUID, data: JourneyUpdate) -> Journey:
    """Apply the fields sent in a PATCH (running instances keep the definition they started with)."""
    journey = await repo.get_or_404(journey_id)
    for field, value in changes(data).items():
        if field == "trigger_conditions":
            value = dump_trigger_conditions(data.trigger_conditions)
        if field in {"name", "is_default", "is_active"} and value is None:
            raise Unprocessable(f"{field} cannot be null.", loc=("body", field))
        setattr(journey, field, value)
    return await repo.save(journey)


async def _ensure_free_order_index(repo: JourneyRepository, journey_id: uuid.UUID, order_index: int) -> None:
    taken = await repo.session.scalar(
        select(JourneyStage.id).where(
            JourneyStage.journey_id == journey_id, JourneyStage.order_index == order_index
        )
    )
    if taken is not None:
        raise Conflict("Another stage of this journey already has that order_index.")


async def add_stage(repo: JourneyRepository, journey_id: uuid.UUID, data: JourneyStageCreate) -> JourneyStage:
    """Append a stage to a journey (409 when its order_index is taken, 422 for a template it cannot use)."""
    journey = await repo.get_or_404(journey_id)
    await _ensure_free_order_index(repo, journey.id, data.order_index)
    await ensure_known_templates(repo.session, [(data.order_index, data.actions)])
    stage = JourneyStage(journey_id=journey.id, **_stage_values(data))
    repo.session.add(stage)
    await repo.session.flush()
    await repo.session.refresh(stage)
    return stage


async def update_stage(
    repo: JourneyRepository, journey_id: uuid.UUID, stage_id: uuid.UUID, data: JourneyStageUpdate
) -> JourneyStage:
    """Apply the fields sent in a stage PATCH (422 for a template the new actions cannot use)."""
    await repo.get_or_404(journey_id)
    stage = await repo.stage_or_none(journey_id, stage_id)
    if stage is None:
        raise NotFound("Journey stage not found.")
    sent = changes(data)
    for field in ("name", "order_index", "trigger_event", "actions"):
        if field in sent and sent[field] is None:
            raise Unprocessable(f"{field} cannot be null.", loc=("body", field))
    if "order_index" in sent and sent["order_index"] != stage.order_index:
        await _ensure_free_order_index(repo, journey_id, sent["order_index"])
    if data.actions is not None:
        order_index = data.order_index if data.order_index is not None else stage.order_index
        await ensure_known_templates(repo.session, [(order_index, data.actions)])
    for field, value in _stage_values(data, set(sent)).items():
        setattr(stage, field, value)
    await repo.session.flush()
    await repo.session.refresh(stage)
    return stage
