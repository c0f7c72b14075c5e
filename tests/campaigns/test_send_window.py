"""A campaign enrols only inside its daily send window, in the tenant's time zone: outside it the batch
enrols no one and says how long until the window opens, right across a daylight-saving change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update

from core.database import bind_tenant
from core.settings import Settings
from domain.campaigns import steps
from domain.tenants.models import Tenant
from tests.campaigns.support import cohort_of_everyone, launch

NEW_YORK = ZoneInfo("America/New_York")


async def _windowed(client, auth, clinic, system_sessionmaker, tenant_id) -> uuid.UUID:
    await clinic.patient()
    launched = await launch(
        client,
        auth,
        cohort_id=await cohort_of_everyone(client, auth),
        journey_id=await clinic.journey(),
        send_window={"start": "09:00", "end": "17:00"},
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await session.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(timezone="America/New_York")
        )
        await session.commit()
    return uuid.UUID(launched["id"])


async def _batch_at(system_sessionmaker, tenant_id, campaign_id, now: datetime):
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result, _messages = await steps.enroll_batch(
            session, campaign_id, now=now, limit=10, settings=Settings(env="test")
        )
        await session.rollback()  # each probe leaves the campaign as it was
        return result


async def test_outside_the_window_nobody_is_enrolled_and_the_wait_ends_when_it_opens(
    client, auth, clinic, system_sessionmaker, tenant_id
) -> None:
    campaign_id = await _windowed(client, auth, clinic, system_sessionmaker, tenant_id)
    evening = datetime(2031, 3, 4, 20, 0, tzinfo=NEW_YORK)  # 20:00: opens at 09:00 tomorrow, 13 h away
    result = await _batch_at(system_sessionmaker, tenant_id, campaign_id, evening.astimezone(UTC))
    assert (result.status, result.processed, result.remaining) == ("running", 0, 1)
    assert result.wait_seconds == 13 * 3600

    early = datetime(2031, 3, 4, 7, 30, tzinfo=NEW_YORK)  # 07:30: opens in 1.5 h
    assert (await _batch_at(system_sessionmaker, tenant_id, campaign_id, early)).wait_seconds == 5400

    inside = datetime(2031, 3, 4, 9, 0, tzinfo=NEW_YORK)
    result = await _batch_at(system_sessionmaker, tenant_id, campaign_id, inside)
    assert (result.processed, result.wait_seconds) == (1, 0)


async def test_the_wait_across_the_spring_change_is_one_hour_shorter(
    client, auth, clinic, system_sessionmaker, tenant_id
) -> None:
    campaign_id = await _windowed(client, auth, clinic, system_sessionmaker, tenant_id)
    # 8 March 2031, 20:00 in New York; the clocks go forward that night, so 09:00 comes 12 h later.
    evening = datetime(2031, 3, 8, 20, 0, tzinfo=NEW_YORK)
    assert (await _batch_at(system_sessionmaker, tenant_id, campaign_id, evening)).wait_seconds == 12 * 3600
