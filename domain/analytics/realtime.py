"""The real-time metrics stream: one shared PostgreSQL LISTEN on `prm_metrics` per API process.

Triggers on appointments, journey_instances, communications and tickets notify with the tenant id (see
migration 0005). A `MetricsListener` holds the process's only LISTEN connection and fans the notices out
to per-tenant feeds. A feed lets a burst of writes settle for `SETTLE_SECONDS`, computes the tenant's
snapshot once and hands the same JSON to every open stream of that tenant. Each stream keeps only the
latest snapshot it has not sent yet, so a slow client never holds up the others nor piles up memory.
If the connection drops the listener reconnects with backoff and refreshes every stream, since a change
may have gone unnoticed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from core.embedded_db import to_libpq_url
from domain.analytics.service import realtime_snapshot

log = logging.getLogger(__name__)

CHANNEL = "prm_metrics"
LISTEN = f"LISTEN {CHANNEL}"
SETTLE_SECONDS = 0.2
# A round trip this often finds a connection that died silently (no FIN, e.g. a dropped network path).
HEALTH_CHECK_SECONDS = 30.0
HEALTH_CHECK_TIMEOUT = 10.0
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CONNECT_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "application_name": "prm-metrics-listener",  # recognisable in pg_stat_activity
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

SnapshotSource = Callable[[uuid.UUID], Awaitable[str]]


async def snapshot_json(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> str:
    """Today's snapshot of the tenant, as JSON text."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        snapshot = await realtime_snapshot(session, tenant_id)
    return snapshot.model_dump_json()


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): doubling, capped, jittered so that many
    API processes do not reconnect in lockstep after a PostgreSQL restart."""
    ceiling = min(RECONNECT_MAX_SECONDS, RECONNECT_MIN_SECONDS * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


def _reason(exc: BaseException) -> str:
    """The first line of an error (libpq adds hints on further lines), or its type when it has no text."""
    return next(iter(str(exc).splitlines()), "") or type(exc).__name__


class Subscription:
    """One open stream: an async iterator of snapshot JSON that keeps only the newest unsent snapshot."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self._latest: str | None = None
        self._closed = False
        self._ready = asyncio.Event()

    def deliver(self, snapshot: str) -> None:
        """Offer a snapshot; one not yet sent is replaced (the stream only ever needs the newest)."""
        self._latest = snapshot
        self._ready.set()

    def close(self) -> None:
        """End the iteration (the server or the listener is shutting down)."""
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str:
        await self._ready.wait()
        self._ready.clear()
        if self._closed or self._latest is None:
            raise StopAsyncIteration
        snapshot, self._latest = self._latest, None
        return snapshot


async def _close_when(until: Callable[[], Awaitable[object]], subscription: Subscription) -> None:
    await until()
    subscription.close()


class _TenantFeed:
    """The open streams of one tenant and the snapshots they are owed."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.subscribers: set[Subscription] = set()
        self.pending: set[Subscription] = set()  # owed a snapshot computed from now on
        self.settle = False  # a change was notified: let the burst settle before computing
        self.wake = asyncio.Event()

    def owe_everyone(self, *, settle: bool) -> None:
        self.pending |= self.subscribers
        self.settle = self.settle or settle
        self.wake.set()


class MetricsListener:
    """The process's single LISTEN connection on `prm_metrics`, fanned out to per-tenant subscribers.

    Connects on the first subscription; `close()` (at application shutdown) ends every stream."""

    def __init__(
        self,
        conninfo: str,
        snapshot: SnapshotSource,
        *,
        settle_seconds: float = SETTLE_SECONDS,
        health_check_seconds: float = HEALTH_CHECK_SECONDS,
    ) -> None:
        self._conninfo = conninfo
        self._snapshot = snapshot
        self._settle_seconds = settle_seconds
        self._health_check_seconds = health_check_seconds
        self._feeds: dict[str, _TenantFeed] = {}
        self._listening = asyncio.Event()
        self._listen_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.backend_pid: int | None = None  # of the LISTEN connection, while it is up

    @classmethod
    def for_database(
        cls, database_url: str, sessionmaker: async_sessionmaker[AsyncSession], **options: Any
    ) -> MetricsListener:
        """A listener on the app's database (SQLAlchemy URL), computing snapshots with the app's sessions."""

        async def snapshot(tenant_id: uuid.UUID) -> str:
            return await snapshot_json(sessionmaker, tenant_id)

        return cls(to_libpq_url(database_url), snapshot, **options)

    @property
    def subscriber_count(self) -> int:
        """Open streams, all tenants together."""
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    @property
    def running_tasks(self) -> int:
        """Background tasks besides the listener's own (none once the last stream has gone)."""
        return len(self._tasks)

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up."""
        return self._listening.is_set()

    @asynccontextmanager
    async def subscribe(
        self, tenant_id: uuid.UUID, *, until: Callable[[], Awaitable[object]] | None = None
    ) -> AsyncIterator[Subscription]:
        """A stream of the tenant's snapshots: the current one as soon as LISTEN is active (so no change
        slips between), then a fresh one after each change; it ends when `until()` returns (if given) or
        the listener closes. Unsubscribes on exit."""
        subscription = Subscription(tenant_id)
        if self._closed:
            subscription.close()
            yield subscription
            return
        watcher = self._spawn(_close_when(until, subscription)) if until is not None else None
        self._start()
        key = str(tenant_id)  # the notice's payload is `tenant_id::text`
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _TenantFeed(tenant_id)
            self._spawn(self._serve(feed))
        feed.subscribers.add(subscription)
        feed.pending.add(subscription)
        feed.wake.set()
        try:
            yield subscription
        finally:
            if watcher is not None:
                watcher.cancel()  # not awaited: cleanup may run inside a cancelled scope; close() reaps it
            feed.subscribers.discard(subscription)
            feed.pending.discard(subscription)
            if not feed.subscribers:
                if self._feeds.get(key) is feed:
                    del self._feeds[key]
                feed.wake.set()  # its task sees nobody left and ends

    async def close(self) -> None:
        """Stop listening, end every stream and wait for the background tasks to finish."""
        self._closed = True
        tasks = [*self._tasks, *([self._listen_task] if self._listen_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for feed in self._feeds.values():
            for subscription in feed.subscribers:
                subscription.close()
        self._feeds.clear()

    def _start(self) -> None:
        if self._listen_task is None:
            self._listen_task = asyncio.create_task(self._listen(), name="prm-metrics-listener")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_notice(self, payload: str) -> None:
        feed = self._feeds.get(payload)
        if feed is not None:
            feed.owe_everyone(settle=True)

    async def _listen(self) -> None:
        """Keep one LISTEN connection up for the life of the process, reconnecting with backoff."""
        attempt, was_up = 0, False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, **CONNECT_OPTIONS)
            except (psycopg.Error, OSError) as exc:
                attempt += 1
                delay = _backoff(attempt)
                log.warning("Metrics listener cannot connect (%s); retrying in %.1f s", _reason(exc), delay)
                await asyncio.sleep(delay)
                continue
            try:
                await conn.execute(LISTEN)
                self.backend_pid = conn.info.backend_pid
                self._listening.set()
                if was_up:
                    log.warning("Metrics listener reconnected; refreshing every open stream")
                was_up, attempt = True, 0
                for feed in self._feeds.values():  # a change may have been missed while down
                    feed.owe_everyone(settle=False)
                while True:
                    async for notice in conn.notifies(timeout=self._health_check_seconds):
                        self._on_notice(notice.payload)
                    # Repeating LISTEN is a harmless round trip (and leaves pg_stat_activity's query as is);
                    # psycopg >= 3.2.4 keeps notices that arrive meanwhile for the next notifies().
                    await asyncio.wait_for(conn.execute(LISTEN), HEALTH_CHECK_TIMEOUT)
            except Exception as exc:  # psycopg.OperationalError when the server goes; anything else alike
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "Metrics listener lost its connection (%s); reconnecting in %.1f s", _reason(exc), delay
                )
            finally:
                self._listening.clear()
                self.backend_pid = None
                await conn.close()
            await asyncio.sleep(delay)

    async def _serve(self, feed: _TenantFeed) -> None:
        """Compute the tenant's snapshot when it is owed, once for all its streams; ends with the last one."""
        failures = 0
        while True:
            await feed.wake.wait()
            if feed.settle and feed.subscribers:
                await asyncio.sleep(self._settle_seconds)  # a burst of writes becomes one snapshot
            await self._listening.wait()  # computed only while listening: no change slips between
            feed.wake.clear()
            if not feed.subscribers:
                return
            feed.settle = False
            targets, feed.pending = feed.pending & feed.subscribers, set()
            if not targets:
                continue
            try:
                snapshot = await self._snapshot(feed.tenant_id)
            except Exception as exc:
                failures += 1
                delay = _backoff(failures)
                log.warning("Real-time snapshot failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                feed.pending |= targets
                feed.wake.set()
                await asyncio.sleep(delay)
                continue
            failures = 0
            for subscription in targets & feed.subscribers:
                subscription.deliver(snapshot)
