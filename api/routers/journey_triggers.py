"""Journey triggers API (`/journeys/{id}/triggers`): the dry run of a journey's trigger conditions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CanRead, SessionDep
from api.openapi import AUTHENTICATED, errors
from core.events import EventType
from core.pagination import PageDep
from domain.journeys import dry_run
from domain.journeys.schemas import TriggerTestResponse

# A tag of its own: the answer names patients (ids) and what happened to them, so it is audited.
router = APIRouter(prefix="/journeys", tags=["journey triggers"], responses=AUTHENTICATED)


@router.get(
    "/{journey_id:record_id}/triggers/test",
    response_model=TriggerTestResponse,
    dependencies=[CanRead],
    responses=errors(not_found="No such journey in your tenant"),
)
async def test_journey_triggers(
    journey_id: uuid.UUID,
    session: SessionDep,
    page: PageDep,
    days: Annotated[
        int, Query(ge=1, le=dry_run.MAX_WINDOW_DAYS, description="How many days back to look (max 90)")
    ] = 7,
    event_type: Annotated[EventType | None, Query(description="Only events of this type")] = None,
) -> TriggerTestResponse:
    """Dry run of the journey's trigger: the tenant's events of the last `days` days, newest first, each with
    whether the journey's current `trigger_conditions` (and, for a default journey, every new patient) would
    start it, why not otherwise, and what the dispatcher already did with it. Starts nothing."""
    return await dry_run.test_trigger(session, journey_id, page, days=days, event_type=event_type)
