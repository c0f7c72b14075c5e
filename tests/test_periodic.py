"""The worker's periodic jobs (core.periodic): one round of a job at a time across processes, a failed round
tried again, more work run at once, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.periodic import PeriodicJob, PeriodicRunner


def _engine(sessionmaker: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    return sessionmaker.kw["bind"]


async def test_a_job_runs_one_round_at_a_time_across_runners(system_sessionmaker) -> None:
    inside, rounds = asyncio.Event(), []
    release = asyncio.Event()

    async def slow_round() -> bool:
        rounds.append(1)
        inside.set()
        await release.wait()
        return False

    job = PeriodicJob(f"test-{uuid.uuid4().hex[:8]}", 60.0, slow_round)
    # Two runners stand for two worker processes: each takes the lock on a connection of its own.
    first = PeriodicRunner(_engine(system_sessionmaker), [job])
    second = PeriodicRunner(_engine(system_sessionmaker), [job])
    running = asyncio.create_task(first.run_once(job))
    await inside.wait()
    assert await second.run_once(job) is None  # the other one holds the job's lock: it skips the round
    release.set()
    assert await running is False
    assert len(rounds) == 1
    release.set()
    assert await second.run_once(job) is False  # the lock was released with the round


async def test_a_failed_round_is_tried_again_and_more_work_runs_at_once(system_sessionmaker) -> None:
    calls: list[str] = []
    stop = asyncio.Event()

    async def flaky() -> bool:
        calls.append("round")
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        if len(calls) < 4:
            return True  # a full batch: run again without waiting
        stop.set()
        return False

    job = PeriodicJob(f"test-{uuid.uuid4().hex[:8]}", 0.05, flaky)
    await asyncio.wait_for(PeriodicRunner(_engine(system_sessionmaker), [job]).run(stop), timeout=10)
    assert len(calls) == 4
