"""Campaign test helpers: a cohort and a journey through the API, a launch, the campaign's state."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.campaigns.models import CampaignMember
from domain.campaigns.plan import campaign_workflow_id
from tests.polling import eventually

API = "/api/v1/prm"


async def launch(
    client: httpx.AsyncClient, auth: dict[str, str], *, cohort_id: Any, journey_id: Any, **fields: Any
) -> dict[str, Any]:
    """Launch a campaign through the API (201 expected): into `journey_id`, or (None) with the `message`
    given in `fields`; its body."""
    body = {"name": f"Recall {uuid.uuid4().hex[:6]}", "cohort_id": str(cohort_id)}
    if journey_id is not None:
        body["journey_id"] = str(journey_id)
    answer = await client.post(f"{API}/campaigns", json={**body, **fields}, headers=auth)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def campaign(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: Any) -> dict[str, Any]:
    """The campaign as `GET /campaigns/{id}` shows it."""
    answer = await client.get(f"{API}/campaigns/{campaign_id}", headers=auth)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def cohort_of_everyone(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    """A cohort holding every patient of the tenant (`{}`): a test's tenant holds only its own."""
    answer = await client.post(
        f"{API}/cohorts", json={"name": f"All {uuid.uuid4().hex[:6]}", "criteria": {}}, headers=auth
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def result_of(env: Any, campaign_id: Any, *, step: float = 60.0) -> str:
    """The campaign workflow's result (its final status): the time-skipping server's clock is moved on a
    `step` at a time (its pace and start timers fire) until the workflow has closed."""
    handle = env.client.get_workflow_handle(campaign_workflow_id(campaign_id))

    async def closed() -> bool:
        if (await handle.describe()).close_time is not None:
            return True
        await env.sleep(step)
        return False

    await eventually(closed, "the campaign's workflow to close", within=60)
    return str(await handle.result())


async def instances_by_patient(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, journey_id: Any
) -> dict[uuid.UUID, int]:
    """How many instances of the journey each patient has, read in plain SQL."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT patient_id, count(*) FROM journey_instances "
                "WHERE tenant_id = :tenant AND journey_id = :journey GROUP BY patient_id"
            ),
            {"tenant": tenant_id, "journey": uuid.UUID(str(journey_id))},
        )
        return {patient_id: n for patient_id, n in rows}


async def members(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, campaign_id: Any
) -> list[CampaignMember]:
    """The campaign's member rows."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return list(
            await session.scalars(
                select(CampaignMember).where(CampaignMember.campaign_id == uuid.UUID(str(campaign_id)))
            )
        )


async def first_of_one_a_minute(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Any, members: int, first_name: str = "Pat"
) -> tuple[dict[str, Any], uuid.UUID]:
    """A journey campaign over `members` new patients at one a minute, once its first member is enrolled
    (the next is due a minute later, which only the test's own clock lets pass): (its body, the journey)."""
    for i in range(members):
        await clinic.patient(first_name=first_name, last_name=f"Doe{i}")
    journey = await clinic.journey()
    cohort = await cohort_of_everyone(client, auth)
    launched = await launch(client, auth, cohort_id=cohort, journey_id=journey, pace_per_minute=1)

    async def first_enrolled() -> bool:
        return (await campaign(client, auth, launched["id"]))["counts"]["enrolled"] == 1

    await eventually(first_enrolled, "the first member enrolled")
    return launched, journey
