"""Which tenants are active, known without a query on every request, and never trusted past a change.

Every authenticated request checks that the caller's tenant exists and is active. `ActiveTenants` keeps
the tenants found active in the process and forgets one as soon as PostgreSQL says it changed: a trigger on
`tenants` (migration 0017) notifies `prm_tenants` with the tenant's id on every UPDATE and DELETE (`*` on
a TRUNCATE), and one LISTEN connection per process drops the entry. So a deactivation, whoever commits it
(the API, the CLI, an operator's SQL), is refused by every process within moments of its commit.

The cache is only trusted while the LISTEN connection is up: before it listens, while it reconnects, and
for a lookup that a notice overtook (a deactivation committed while the lookup ran), every check goes to
the database. An entry is also forgotten after `max_age` seconds, a bound in case the connection dies
without anyone noticing before the next health check. Only "active" is cached: a new, reactivated or
unknown tenant is looked up each time until it is found active.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from domain.tenants.service import get_active_tenant

log = logging.getLogger(__name__)

CHANNEL = "prm_tenants"
EVERY_TENANT = "*"  # the payload of a TRUNCATE
HEALTH_CHECK_SECONDS = 30.0
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CONNECT_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "application_name": "prm-tenant-listener",
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class ActiveTenants:
    """The process's cache of active tenants, kept true by PostgreSQL's notices (see the module docs)."""

    def __init__(self, conninfo: str, *, max_age: float = 60.0) -> None:
        self.conninfo = conninfo
        self.max_age = max_age
        self._active: dict[uuid.UUID, float] = {}  # tenant -> when it was found active (monotonic)
        self._changes = 0  # bumped by every notice: a lookup that saw it move does not cache
        self._listening = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._listening_event = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (only then is the cache trusted)."""
        return self._listening

    def known_active(self, tenant_id: uuid.UUID) -> bool:
        """Whether the cache, when it can be trusted, knows `tenant_id` as active (no query)."""
        if self._listening:
            found_at = self._active.get(tenant_id)
            return found_at is not None and time.monotonic() - found_at < self.max_age
        return False

    async def is_active(self, session: AsyncSession, tenant_id: uuid.UUID) -> bool:
        """Whether `tenant_id` exists and is active: from the cache when it can be trusted, else a query."""
        if self.known_active(tenant_id):
            return True
        changes_before = self._changes
        if await get_active_tenant(session, tenant_id) is None:
            return False
        if self._listening and self._changes == changes_before:
            self._active[tenant_id] = time.monotonic()
        return True

    def forget(self, payload: str) -> None:
        """A tenant changed (its id), or every tenant may have (`*`)."""
        self._changes += 1
        if payload == EVERY_TENANT:
            self._active.clear()
            return
        try:
            self._active.pop(uuid.UUID(payload), None)
        except ValueError:
            log.warning("ignoring a %s notice that names no tenant", CHANNEL)

    def start(self) -> None:
        """Listen in the background (connects at once, reconnects with backoff)."""
        self._task = asyncio.create_task(self._run(), name="tenant-listener")

    async def wait_listening(self) -> None:
        """Return once the LISTEN connection is up (bound the wait with `asyncio.timeout`)."""
        await self._listening_event.wait()

    async def close(self) -> None:
        """Stop listening."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _stop_trusting(self) -> None:
        self._listening = False
        self._listening_event.clear()
        self.forget(EVERY_TENANT)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, **CONNECT_OPTIONS) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever changed while nobody listened is unknown: start from nothing.
                    self.forget(EVERY_TENANT)
                    self._listening = True
                    self._listening_event.set()
                    attempt = 0
                    while True:
                        async for notice in conn.notifies(timeout=HEALTH_CHECK_SECONDS):
                            self.forget(notice.payload)
                        await conn.execute("SELECT 1")  # a connection that died silently fails here
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._stop_trusting()
                attempt += 1
                delay = min(RECONNECT_MAX_SECONDS, RECONNECT_MIN_SECONDS * 2 ** (attempt - 1))
                log.warning(
                    "tenant listener disconnected (%s); every request checks its tenant in the database "
                    "until it is back",
                    type(exc).__name__,
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            finally:
                self._stop_trusting()
