"""The real-time metrics stream: PostgreSQL LISTEN/NOTIFY on `prm_metrics`, one snapshot per change.

Triggers on appointments, journey_instances, communications and tickets notify with the tenant id (see
migration 0005). Each stream holds one LISTEN connection of its own (closed when the client goes), waits
for its tenant's notifications, lets a burst settle for `SETTLE_SECONDS`, then pushes a fresh snapshot.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.analytics.service import realtime_snapshot

CHANNEL = "prm_metrics"
SETTLE_SECONDS = 0.2


def libpq_url(url: URL) -> str:
    """A psycopg connection string for the app's database URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def snapshot_json(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> str:
    """Today's snapshot of the tenant, as JSON text."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        snapshot = await realtime_snapshot(session, tenant_id)
    return snapshot.model_dump_json()


async def metric_snapshots(
    conninfo: str, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> AsyncIterator[str]:
    """The current snapshot, then a new one after every change to the tenant's metrics (until cancelled)."""
    wanted = str(tenant_id)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        yield await snapshot_json(sessionmaker, tenant_id)  # listening first: no change slips between
        while True:
            async for notice in conn.notifies():
                if notice.payload == wanted:
                    break
            async for _ in conn.notifies(timeout=SETTLE_SECONDS):
                pass  # a burst of writes becomes one snapshot
            yield await snapshot_json(sessionmaker, tenant_id)
