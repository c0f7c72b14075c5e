"""Campaigns API (`/campaigns`): a cohort enrolled into a journey by one durable workflow."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CanRead, CanWrite, CurrentPrincipal, IdempotencyKey, SessionDep, ensure_own_tenant
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.pagination import PageDep
from domain.campaigns import service
from domain.campaigns.plan import CampaignStatus
from domain.campaigns.repository import CampaignRepository
from domain.campaigns.results import campaign_results
from domain.campaigns.schemas import (
    CampaignCreate,
    CampaignListResponse,
    CampaignResponse,
    CampaignResults,
)

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses=AUTHENTICATED)
NO_CAMPAIGN = "No such campaign in your tenant"
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]


@router.post(
    "",
    response_model=CampaignResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses={
        200: {"description": "A campaign launched earlier under the same Idempotency-Key"},
        **errors(
            conflict="The journey is inactive",
            unprocessable="Invalid body, or a cohort or journey that is not your tenant's",
            forbidden=FOREIGN_TENANT,
        ),
    },
)
async def launch_campaign(
    body: CampaignCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CampaignResponse:
    """Launch a campaign (201): at `starts_at` (or at once) the cohort's patients are frozen as its members,
    then each is placed on the journey once, as `POST /journeys/instances` would, in batches, at most
    `pace_per_minute` a minute and only inside `send_window` (your tenant's local time) when given.

    Members are skipped, and counted by reason, when merged into another record (`merged`), no longer active
    (`inactive`), or already on the journey (`already_on_journey`). The campaign's workflow start is saved
    with it, so the answer is 201 while Temporal is unreachable too. With an `Idempotency-Key`, a repeated
    request returns the first campaign (200) and launches nothing.

    With `recurrence` the campaign repeats: it is a definition whose Temporal Schedule launches an
    occurrence every `every_days` days, the first at `starts_at` (or at once). Each occurrence is a campaign
    of its own (`definition_id` names the definition) that freezes the cohort as it is then and skips, with
    the reason `cooldown`, the patients an earlier occurrence reached within `cooldown_days`. A fire while
    the previous occurrence has not ended is skipped."""
    ensure_own_tenant(principal, body.tenant_id)
    campaign, created = await service.create_campaign(
        session, body, created_by=principal.sub, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return (await service.views(session, [campaign]))[0]


@router.get(
    "",
    response_model=CampaignListResponse,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_campaigns(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    tenant_id: TenantFilter = None,
    status: CampaignStatus | None = None,
    definition_id: Annotated[
        uuid.UUID | None, Query(description="Only the occurrences of this recurring campaign")
    ] = None,
) -> CampaignListResponse:
    """List your tenant's campaigns, newest first, with their counts; of one `status`, or the occurrences of
    one recurring campaign (`definition_id`), when given."""
    ensure_own_tenant(principal, tenant_id)
    repo = CampaignRepository(session)
    rows, total = await repo.page(repo.listed(status, definition_id), page)
    return CampaignListResponse.build(await service.views(session, rows), total, page)


@router.get(
    "/{campaign_id:record_id}",
    response_model=CampaignResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_CAMPAIGN),
)
async def get_campaign(campaign_id: uuid.UUID, session: SessionDep) -> CampaignResponse:
    """One campaign: its `status` (scheduled, running, paused, completed, cancelled, failed) and `counts`
    (members frozen, pending, enrolled, skipped by reason). A recurring campaign shows its `recurrence`:
    its schedule's state, its next run, its latest runs with their counts; its `counts` sum all its runs."""
    campaign = await CampaignRepository(session).get_or_404(campaign_id)
    return (await service.views(session, [campaign]))[0]


@router.post(
    "/{campaign_id:record_id}/pause",
    response_model=CampaignResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_CAMPAIGN, conflict="The campaign has ended"),
)
async def pause_campaign(campaign_id: uuid.UUID, session: SessionDep) -> CampaignResponse:
    """Hold the campaign: once this answers, no further member is enrolled until it is resumed. Pausing a
    paused campaign changes nothing. A recurring campaign's schedule is paused: no occurrence is launched
    until it is resumed (an occurrence under way goes on; pause it on its own)."""
    campaign = await service.pause_campaign(session, campaign_id)
    return (await service.views(session, [campaign]))[0]


@router.post(
    "/{campaign_id:record_id}/resume",
    response_model=CampaignResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_CAMPAIGN, conflict="The campaign has ended"),
)
async def resume_campaign(campaign_id: uuid.UUID, session: SessionDep) -> CampaignResponse:
    """Continue a paused campaign with the members it has not reached yet; a recurring campaign's schedule
    fires again."""
    campaign = await service.resume_campaign(session, campaign_id)
    return (await service.views(session, [campaign]))[0]


@router.post(
    "/{campaign_id:record_id}/cancel",
    response_model=CampaignResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_CAMPAIGN, conflict="The campaign has already completed or failed"),
)
async def cancel_campaign(campaign_id: uuid.UUID, session: SessionDep) -> CampaignResponse:
    """Stop the campaign for good: members not yet enrolled never are; those enrolled stay on the journey. A
    recurring campaign's schedule is deleted and its occurrence under way cancelled."""
    campaign = await service.cancel_campaign(session, campaign_id)
    return (await service.views(session, [campaign]))[0]


@router.get(
    "/{campaign_id:record_id}/results",
    response_model=CampaignResults,
    dependencies=[CanRead],
    responses=errors(not_found=NO_CAMPAIGN),
)
async def get_campaign_results(
    campaign_id: uuid.UUID,
    session: SessionDep,
    booked_within_days: Annotated[int, Query(ge=1, le=365, description="Days after a message")] = 30,
) -> CampaignResults:
    """What the campaign achieved, counting each enrolled patient once from their first message of the
    journey: `messaged`, `sent`, `delivered`, `replied` and `opted_out` (after that message, on its channel),
    and `booked` (an appointment made within `booked_within_days` of it and not cancelled), by channel and
    language of that message, and in `total`; with the members, enrolled and skipped counts. A recurring
    campaign's results are its occurrences' summed (a patient reached by two counts in each)."""
    return await campaign_results(session, campaign_id, booked_within_days=booked_within_days)
