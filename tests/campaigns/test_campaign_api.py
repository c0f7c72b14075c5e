"""The campaigns API refuses what it cannot run, clearly (422 naming the field, 409, 404 across tenants), and
a cohort a campaign names cannot be deleted."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, update

from core.database import bind_tenant
from core.workflow_commands import WorkflowCommand
from domain.campaigns.plan import campaign_workflow_id
from domain.journeys.models import Journey
from tests.campaigns.support import API, cohort_of_everyone, launch


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pace_per_minute": 0}, "pace_per_minute"),
        ({"pace_per_minute": 10**9}, "pace_per_minute"),
        ({"send_window": {"start": "17:00", "end": "09:00"}}, "send_window"),
        ({"starts_at": "2030-01-01T09:00:00"}, "starts_at"),  # no time zone: ambiguous
        ({"name": ""}, "name"),
        ({"name": "x\u0000y"}, "body"),  # refused for the whole body, before any field
        ({"status": "running"}, "status"),  # the server's to set
    ],
)
async def test_an_invalid_launch_is_422_naming_the_field(client, auth, clinic, change, field) -> None:
    body = {"name": "Recall", "cohort_id": await cohort_of_everyone(client, auth)}
    body["journey_id"] = str(await clinic.journey())
    answer = await client.post(f"{API}/campaigns", json={**body, **change}, headers=auth)
    assert answer.status_code == 422, answer.text
    assert field in {str(part) for item in answer.json()["detail"] for part in item["loc"]}


async def test_a_cohort_or_journey_of_another_tenant_is_422_and_an_inactive_journey_409(
    client, auth, clinic, make_tenant, headers_for, system_sessionmaker, tenant_id
) -> None:
    other = headers_for(await make_tenant())
    theirs = await cohort_of_everyone(client, other)
    ours, journey = await cohort_of_everyone(client, auth), await clinic.journey()
    for body, field in (
        ({"cohort_id": theirs, "journey_id": str(journey)}, "cohort_id"),
        ({"cohort_id": ours, "journey_id": str(uuid.uuid4())}, "journey_id"),
    ):
        answer = await client.post(f"{API}/campaigns", json={"name": "X", **body}, headers=auth)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", field]
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await session.execute(update(Journey).where(Journey.id == journey).values(is_active=False))
        await session.commit()
    inactive = await client.post(
        f"{API}/campaigns", json={"name": "X", "cohort_id": ours, "journey_id": str(journey)}, headers=auth
    )
    assert inactive.status_code == 409, inactive.text


async def test_another_tenants_campaign_is_404_for_every_operation(
    client, auth, clinic, make_tenant, headers_for
) -> None:
    launched = await launch(
        client, auth, cohort_id=await cohort_of_everyone(client, auth), journey_id=await clinic.journey()
    )
    other = headers_for(await make_tenant())
    assert (await client.get(f"{API}/campaigns/{launched['id']}", headers=other)).status_code == 404
    for action in ("pause", "resume", "cancel"):
        answer = await client.post(f"{API}/campaigns/{launched['id']}/{action}", headers=other)
        assert answer.status_code == 404, (action, answer.text)
    assert (await client.get(f"{API}/campaigns", headers=other)).json()["items"] == []


async def test_a_cohort_a_campaign_names_cannot_be_deleted(client, auth, clinic) -> None:
    cohort = await cohort_of_everyone(client, auth)
    await launch(client, auth, cohort_id=cohort, journey_id=await clinic.journey())
    refused = await client.delete(f"{API}/cohorts/{cohort}", headers=auth)
    assert refused.status_code == 409, refused.text
    assert "campaign" in refused.json()["detail"]
    assert (await client.get(f"{API}/cohorts/{cohort}", headers=auth)).status_code == 200


async def test_the_list_filters_by_status(client, auth, clinic) -> None:
    cohort, journey = await cohort_of_everyone(client, auth), await clinic.journey()
    first = await launch(client, auth, cohort_id=cohort, journey_id=journey)
    second = await launch(client, auth, cohort_id=cohort, journey_id=journey)
    assert (await client.post(f"{API}/campaigns/{second['id']}/pause", headers=auth)).status_code == 200
    paused = await client.get(f"{API}/campaigns", params={"status": "paused"}, headers=auth)
    scheduled = await client.get(f"{API}/campaigns", params={"status": "scheduled"}, headers=auth)
    assert [c["id"] for c in paused.json()["items"]] == [second["id"]]
    assert [c["id"] for c in scheduled.json()["items"]] == [first["id"]]
    assert (await client.get(f"{API}/campaigns", params={"status": "nope"}, headers=auth)).status_code == 422


async def test_a_double_click_launches_one_campaign_with_one_workflow_start(
    client, auth, clinic, system_sessionmaker, tenant_id
) -> None:
    body = {"name": "Twice", "cohort_id": await cohort_of_everyone(client, auth)}
    body["journey_id"] = str(await clinic.journey())
    headers = {**auth, "Idempotency-Key": f"click-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(client.post(f"{API}/campaigns", json=body, headers=headers) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    (campaign_id,) = {a.json()["id"] for a in answers}
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        starts = await session.scalar(
            select(func.count()).where(WorkflowCommand.workflow_id == campaign_workflow_id(campaign_id))
        )
    assert starts == 1
