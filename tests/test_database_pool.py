"""A process's database pool keeps the connections it opens. SQLAlchemy closes an overflow connection when it
is returned, so a pool smaller than the concurrency a process serves starts a PostgreSQL backend for every
request or activity past it (at the old defaults, 10 kept and 10 overflow, an API serving 32 writes at once
did that for one write in twelve, BENCHMARKS.md's HTTP reading of 2026-12-08)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from core.database import make_engine
from core.settings import Settings

ROUNDS = 5


async def backends_used(settings: Settings, concurrency: int) -> set[int]:
    """The PostgreSQL backends an engine of `settings` serves `ROUNDS` rounds of `concurrency` transactions
    with, all of a round's at once."""
    engine = make_engine(settings.database_url or "", settings)
    backends: set[int] = set()

    async def transaction() -> None:
        async with engine.begin() as conn:
            backends.add(await conn.scalar(text("SELECT pg_backend_pid()")))
            await conn.execute(text("SELECT pg_sleep(0.02)"))  # the round's transactions overlap

    try:
        for _ in range(ROUNDS):
            await asyncio.gather(*(transaction() for _ in range(concurrency)))
    finally:
        await engine.dispose()
    return backends


def test_by_default_a_process_keeps_every_connection_its_concurrency_needs() -> None:
    defaults = Settings.model_construct()  # the declared defaults, whatever PRM_* this shell exports
    assert defaults.db_max_overflow == 0
    assert defaults.db_pool_size == defaults.worker_activities_at_once


async def test_a_pool_as_large_as_the_concurrency_opens_each_connection_once(settings: Settings) -> None:
    sized = settings.model_copy(update={"db_pool_size": 4, "db_max_overflow": 0})

    backends = await backends_used(sized, 4)

    assert len(backends) == 4  # opened in the first round, reused in the four after it


async def test_an_overflow_connection_is_opened_for_each_use_which_is_why_there_is_none_by_default(
    settings: Settings,
) -> None:
    overflowing = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 2})

    backends = await backends_used(overflowing, 4)

    assert len(backends) == 2 + 2 * ROUNDS  # the two kept, and two new ones in every round
