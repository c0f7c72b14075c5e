"""The one-active rule held by the database: a journey whose repeat policy is `never` keeps a patient on it
once at a time, whichever road places them (the API, a campaign's batch), even when the two race."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from core.database import bind_tenant
from domain.campaigns import steps
from domain.campaigns.models import Campaign, CampaignMember
from domain.cohorts.models import Cohort
from domain.journeys import service as journeys
from domain.journeys.models import Journey, JourneyInstance
from domain.journeys.schemas import JourneyInstanceCreate
from tests.campaigns.support import API
from tests.polling import eventually

NEVER_AGAIN = {"event": "patient.registered", "repeat": "never"}


async def _add(sessionmaker, tenant_id, row):
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        session.add(row)
        await session.commit()
    return row


async def test_an_api_placement_racing_a_campaign_batch_leaves_one_active_instance_and_the_member_skipped(
    system_sessionmaker, tenant_id, clinic, settings
) -> None:
    journey = await _add(
        system_sessionmaker, tenant_id, Journey(name="Recall", trigger_conditions=NEVER_AGAIN)
    )
    patient = await clinic.patient()
    cohort = await _add(
        system_sessionmaker, tenant_id, Cohort(name=f"All {uuid.uuid4().hex[:6]}", criteria={})
    )
    campaign = await _add(
        system_sessionmaker, tenant_id, Campaign(name="Recall", cohort_id=cohort.id, journey_id=journey.id)
    )

    async with system_sessionmaker() as api, system_sessionmaker() as batch, system_sessionmaker() as probe:
        for session in (api, batch):
            bind_tenant(session, tenant_id)
        # The coordinator's placement is made, not yet committed: the batch's already-on-journey check
        # cannot see it, so only the database can stop a second active instance.
        await journeys.create_instance(api, JourneyInstanceCreate(journey_id=journey.id, patient_id=patient))
        enrol = asyncio.create_task(
            steps.enroll_batch(batch, campaign.id, now=datetime.now(UTC), limit=100, settings=settings)
        )

        async def batch_waits_on_the_index() -> bool:
            waiting = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            # A transaction sees one snapshot of pg_stat_activity: each look is its own, or a first look
            # taken before the batch waits would be all the later ones see.
            await probe.commit()
            return bool(waiting) or enrol.done()

        try:
            await eventually(batch_waits_on_the_index, "the batch's insert to wait on the placement")
            assert not enrol.done()
        except BaseException:
            await api.rollback()  # lets the batch's insert go, so its session can close
            await asyncio.wait({enrol})
            raise
        await api.commit()
        result, _sending = await enrol
        await batch.commit()

    assert result.processed == 1
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        member = await session.scalar(select(CampaignMember).where(CampaignMember.campaign_id == campaign.id))
        active = await session.scalar(
            select(func.count()).where(
                JourneyInstance.journey_id == journey.id,
                JourneyInstance.patient_id == patient,
                JourneyInstance.status == "active",
            )
        )
    assert member is not None
    assert (member.state, member.skip_reason, member.journey_instance_id) == (
        "skipped",
        "already_on_journey",
        None,
    )
    assert active == 1


async def test_the_api_refuses_a_second_active_instance_only_where_the_repeat_policy_is_never(
    client, auth, clinic, system_sessionmaker, tenant_id
) -> None:
    never = await _add(system_sessionmaker, tenant_id, Journey(name="Once", trigger_conditions=NEVER_AGAIN))
    ordinary = await clinic.journey()
    patient = await clinic.patient()

    async def place(journey_id: uuid.UUID) -> int:
        body = {"journey_id": str(journey_id), "patient_id": str(patient)}
        answer = await client.post(f"{API}/journeys/instances", json=body, headers=auth)
        return answer.status_code

    assert [await place(ordinary), await place(ordinary)] == [201, 201]
    assert [await place(never.id), await place(never.id)] == [201, 409]
    refused = await client.post(
        f"{API}/journeys/instances",
        json={"journey_id": str(never.id), "patient_id": str(patient)},
        headers=auth,
    )
    assert "already on this journey" in refused.json()["detail"]
