"""Journey figures come from rollups the database keeps: after inserts, status moves, stage completions,
deletes (with their cascades) and a move to another journey they equal a direct computation."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage
from tests.analytics import reference
from tests.analytics.conftest import ANALYTICS, Clinic, make_clinic

STATUSES = ["active", "completed", "cancelled", "failed"]
STAGE_STATUSES = ["pending", "active", "completed", "skipped", "failed"]


async def _random_journeys(clinic: Clinic, rng: random.Random, now: datetime) -> None:
    journeys = [Journey(name=name) for name in ("Post-op", "Onboarding", "Post-op")]  # two share a name
    await clinic.add(*journeys)
    instances, stages = [], []
    for _ in range(60):
        started = now - timedelta(days=rng.uniform(0, 40))
        status = rng.choice(STATUSES)
        ended = started + timedelta(days=rng.uniform(0, 5))
        instance = JourneyInstance(
            id=uuid.uuid4(),
            journey_id=rng.choice(journeys).id,
            patient_id=clinic.patient_id,
            status=status,
            started_at=None if rng.random() < 0.05 else started,
            completed_at=ended if status == "completed" or rng.random() < 0.1 else None,
            cancelled_at=ended if status == "cancelled" else None,
        )
        instances.append(instance)
        for k in range(3):
            stage_status = rng.choice(STAGE_STATUSES)
            begun = started + timedelta(hours=rng.uniform(0, 200))
            stages.append(
                JourneyInstanceStage(
                    instance_id=instance.id,
                    order_index=k,
                    name=f"Stage {k}",
                    status=stage_status,
                    started_at=None if stage_status == "pending" or rng.random() < 0.1 else begun,
                    completed_at=begun + timedelta(seconds=rng.uniform(60, 90_000))
                    if stage_status == "completed"
                    else None,
                )
            )
    await clinic.add(*instances)
    await clinic.add(*stages)

    J, S = JourneyInstance, JourneyInstanceStage
    for instance in rng.sample(instances, 15):
        await clinic.execute(update(J).where(J.id == instance.id).values(status=rng.choice(STATUSES)))
    for stage in rng.sample(stages, 30):  # completed now, or reopened
        done = rng.random() < 0.7
        await clinic.execute(
            update(S)
            .where(S.id == stage.id)
            .values(
                status="completed" if done else "active",
                completed_at=now - timedelta(hours=rng.uniform(0, 48)) if done else None,
                started_at=now - timedelta(days=rng.uniform(2, 20)),
            )
        )
    for days, instance in enumerate(rng.sample(instances, 10)):  # a failed one counts on its last update
        await clinic.execute(
            update(J).where(J.id == instance.id).values(updated_at=now - timedelta(days=days, hours=1))
        )
    await clinic.execute(update(J).where(J.id == instances[0].id).values(journey_id=journeys[1].id))
    await clinic.execute(delete(S).where(S.id.in_([s.id for s in rng.sample(stages, 10)])))
    await clinic.execute(delete(J).where(J.id.in_([i.id for i in rng.sample(instances[1:], 8)])))


async def _expected(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    window: reference.Window,
    now: datetime,
) -> dict[str, Any]:
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        instances = (await session.execute(select(JourneyInstance))).scalars().all()
        stages = (await session.execute(select(JourneyInstanceStage))).scalars().all()
        names = {j.id: j.name for j in (await session.execute(select(Journey))).scalars()}
    by_id = {i.id: i for i in instances}

    def inside(instant: datetime | None) -> bool:
        return instant is not None and window.holds(instant)

    overdue = {
        s.instance_id
        for s in stages
        if s.status == "active"
        and s.started_at is not None
        and s.started_at < now - timedelta(days=7)
        and by_id[s.instance_id].status == "active"
    }
    durations: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for s in stages:
        if s.status == "completed" and s.started_at is not None and inside(s.completed_at):
            journey = names[by_id[s.instance_id].journey_id]
            durations[(journey, s.name, s.order_index)].append(
                (s.completed_at - s.started_at).total_seconds()
            )
    return {
        "active": sum(i.status == "active" for i in instances),
        "overdue": len(overdue),
        "started": sum(inside(i.started_at) for i in instances),
        "completed": sum(i.status == "completed" and inside(i.completed_at) for i in instances),
        "cancelled": sum(i.status == "cancelled" and inside(i.cancelled_at) for i in instances),
        "failed": sum(i.status == "failed" and inside(i.updated_at) for i in instances),
        "average_time_per_stage": [
            {
                "journey_name": journey,
                "stage_name": stage,
                "order_index": order,
                "completed": len(seconds),
                "average_seconds": round(sum(seconds) / len(seconds), 1),
            }
            for (journey, stage, order), seconds in sorted(
                durations.items(), key=lambda kv: (kv[0][0], kv[0][2])
            )
        ],
    }


async def test_journey_figures_match_a_direct_computation_and_a_rebuild(
    client: httpx.AsyncClient,
    make_tenant: Callable,
    headers_for: Callable,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from domain.analytics.models import JourneyDaily, JourneyStageDaily

    clinic = await make_clinic(await make_tenant(timezone="Asia/Kolkata"), system_sessionmaker)
    now = datetime.now(UTC)
    await _random_journeys(clinic, random.Random(3), now)
    zone = (await reference.read_tenant(system_sessionmaker, clinic.tenant_id)).zone

    async def check() -> None:
        for period in ("TODAY", "LAST_7_DAYS", "LAST_30_DAYS", "LAST_90_DAYS"):
            resp = await client.get(
                f"{ANALYTICS}/journeys", params={"time_period": period}, headers=headers_for(clinic.tenant_id)
            )
            body = resp.json()
            expected = await _expected(
                system_sessionmaker, clinic.tenant_id, reference.Window.of(body["period"], zone), now
            )
            assert {key: body[key] for key in expected} == expected, period

    async def rollup_rows() -> set[tuple[Any, ...]]:
        async with system_sessionmaker() as session:
            bind_tenant(session, clinic.tenant_id)
            events = await session.execute(
                select(JourneyDaily.day, JourneyDaily.event, JourneyDaily.n).where(JourneyDaily.n != 0)
            )
            S = JourneyStageDaily
            stages = await session.execute(
                select(S.day, S.journey_id, S.order_index, S.stage_name, S.n, S.seconds_sum).where(S.n != 0)
            )
            return {tuple(r) for r in events} | {tuple(r) for r in stages}

    await check()
    kept = await rollup_rows()
    await clinic.rebuild()
    assert await rollup_rows() == kept
    await check()
