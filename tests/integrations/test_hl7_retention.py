"""The records of HL7 v2 messages are kept `PRM_HL7_RETENTION_DAYS` (90 by default), then the worker purges
them in batches. Messages are sent as an EHR would, then aged in the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities import ActivityDeps
from core.client_credentials import Scope
from core.database import mark_system
from core.periodic import PeriodicRunner
from domain.hl7.models import Hl7Message
from domain.hl7.retention import purge_expired
from tests.integrations.conftest import ClientFactory, bearer_for
from tests.integrations.hl7_messages import adt, count, segments, send
from tests.outbox import unreachable_gateway
from tests.polling import eventually
from worker import periodic_jobs

SessionOf = Callable[[], AsyncSession]
RETENTION = timedelta(days=90)


async def age(sessionmaker: async_sessionmaker[AsyncSession], control_ids: list[str], days: int) -> None:
    """Make these messages' records `days` old (in every tenant)."""
    async with sessionmaker() as session:
        mark_system(session)
        await session.execute(
            update(Hl7Message)
            .where(Hl7Message.control_id.in_(control_ids))
            .values(created_at=func.now() - timedelta(days=days))
        )
        await session.commit()


async def controls(session_of: SessionOf) -> set[str]:
    """The tenant's recorded control ids."""
    async with session_of() as session:
        return set((await session.scalars(select(Hl7Message.control_id))).all())


async def test_records_past_the_retention_are_purged_in_batches_and_a_second_purge_finds_none(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    session_of: SessionOf,
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    old = [f"OLD-{i}" for i in range(5)]
    for i, control in enumerate([*old, "RECENT-1"]):
        response = await send(client, hl7_auth, adt("A04", f"MRN90{i}", control=control))
        assert segments(response.text)["MSA"][1] == "AA"
    refused = await send(client, hl7_auth, adt("A04", "MRN-BAD", control="OLD-REFUSED", birth="19801345"))
    assert segments(refused.text)["MSA"][1] == "AE"  # recorded too, so purged too
    await age(system_sessionmaker, [*old, "OLD-REFUSED"], days=91)
    await age(system_sessionmaker, ["RECENT-1"], days=89)

    async def purge() -> int:
        return await purge_expired(system_sessionmaker, keep=RETENTION, batch=2, tenant_id=tenant_id)

    purged, again = await purge(), await purge()

    assert (purged, again) == (6, 0)
    assert await controls(session_of) == {"RECENT-1"}


async def test_the_workers_retention_job_purges_every_tenants_expired_records_and_stops_when_asked(
    client: httpx.AsyncClient,
    hl7_auth: dict[str, str],
    session_of: SessionOf,
    make_tenant,  # type: ignore[no-untyped-def]
    make_client: ClientFactory,
    activity_deps: ActivityDeps,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other_auth = await bearer_for(client, await make_client(await make_tenant(name="Other"), (Scope.HL7,)))
    await send(client, hl7_auth, adt("A04", "MRN9101", control="EXPIRED-MINE"))
    await send(client, other_auth, adt("A04", "MRN9102", control="EXPIRED-THEIRS"))
    await send(client, hl7_auth, adt("A04", "MRN9103", control="KEPT"))
    await age(
        system_sessionmaker,
        ["EXPIRED-MINE", "EXPIRED-THEIRS"],
        days=activity_deps.settings.hl7_retention_days + 1,
    )

    async def purged() -> bool:
        async with system_sessionmaker() as session:
            mark_system(session)
            expired = ["EXPIRED-MINE", "EXPIRED-THEIRS"]
            left = await session.scalar(
                select(func.count()).select_from(Hl7Message).where(Hl7Message.control_id.in_(expired))
            )
            return left == 0

    (job,) = [j for j in periodic_jobs(activity_deps, unreachable_gateway()) if j.name == "retention"]
    assert job.interval == 3600  # at start, then hourly
    stop = asyncio.Event()
    runner = PeriodicRunner(system_sessionmaker.kw["bind"], [job])  # under the job's lock, as the worker
    running = asyncio.create_task(runner.run(stop))
    try:
        await eventually(purged, "the expired records purged")
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    assert await controls(session_of) == {"KEPT"}
    assert await count(session_of, Hl7Message) == 1
