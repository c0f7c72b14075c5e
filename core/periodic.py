"""The worker's periodic work, run one way: named jobs, each on its interval, each under its own lock.

Five kinds of work recur in the worker (`worker.periodic_jobs`): delivering the workflow commands the fast
path left (`core.workflow_commands.CommandRelay`, every couple of seconds), dispatching domain events to the
journeys they trigger (`domain.journeys.trigger_dispatch`), chaining the audit records no API process
chained (`core.audit.chain_round`, every second), anchoring the audit chains' heads
(`domain.audit.anchor`), and retention (delivered commands, dispatched events, HL7 message records;
hourly). `PeriodicRunner` runs each as a `PeriodicJob`:

- before a round does anything, it takes the job's PostgreSQL advisory lock (session-level, on a connection
  of its own, released when the round ends or the connection dies), so across every worker process one
  round of a job runs at a time and the others skip it; a job never sweeps what another is sweeping;
- a round that says more is waiting runs again at once; otherwise the job sleeps its interval;
- a failed round (the database down) is logged by its error's class and tried again next interval.

`claim` is the one way a job takes rows to work on: locked `FOR UPDATE SKIP LOCKED` in the caller's
transaction, so a row is worked on by one transaction at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

log = logging.getLogger(__name__)


async def claim(session: AsyncSession, stmt: Select[Any], *, limit: int) -> list[Any]:
    """Lock and return up to `limit` rows of `stmt` that no other transaction holds (SKIP LOCKED)."""
    return list((await session.scalars(stmt.limit(limit).with_for_update(skip_locked=True))).all())


@dataclass
class PeriodicJob:
    """A named round of work, run every `interval` seconds; `round` returns True when more is waiting."""

    name: str
    interval: float
    round: Callable[[], Awaitable[bool]]


class PeriodicRunner:
    """Runs its jobs until stopped, each under its advisory lock (module docstring)."""

    def __init__(self, engine: AsyncEngine, jobs: list[PeriodicJob]) -> None:
        self.engine = engine
        self.jobs = jobs

    async def run_once(self, job: PeriodicJob) -> bool | None:
        """One round of `job` if its lock is free; what the round returned, or None when another process
        holds the lock."""
        async with self.engine.connect() as conn:
            key = {"key": f"prm-periodic:{job.name}"}
            locked = await conn.scalar(text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key)
            await conn.commit()  # the lock is the session's: no transaction stays open while the job works
            if not locked:
                return None
            try:
                return await job.round()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
                await conn.commit()

    async def _loop(self, job: PeriodicJob, stop: asyncio.Event) -> None:
        while not stop.is_set():
            more: Any = False
            try:
                more = await self.run_once(job)
            except Exception as exc:
                log.warning("periodic job %s failed: %s", job.name, type(exc).__name__)
            if more:
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=job.interval)
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event) -> None:
        """Every job's loop, until `stop` is set (a round under way finishes first)."""
        await asyncio.gather(*(self._loop(job, stop) for job in self.jobs))
