"""The hottest reads, run straight on psycopg's pool: no SQLAlchemy at run time.

A read module of a domain (`domain.records.reads`, ...) builds its statements with SQLAlchemy Core once, at
import, as `TenantRead`s: each one filters every tenant-scoped table it reads by a `:tenant_id` parameter
of its own (refused at import without one; that it filters *each* table is for the module's tests to
show). They are compiled once for psycopg and run on the app's read pool (`make_read_pool`: autocommit,
statements prepared by psycopg after a few runs) by a `TenantReads`, which fills the tenant from the
caller and nothing else can. Writes, and the reads not named here, keep the ORM and its session; a write
that answers with a read's shape runs the same statement inside its transaction (`TenantReads.within`), so
it sees what it has just written and the shape is built one way.

What this saves against the same statement on SQLAlchemy's async engine is measured by
`bench/request_ladder.py` (its Core rung): the engine's pool and execution run each call through a
greenlet and its result processing, 0.3 ms of a 1.9 ms request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from sqlalchemy import ClauseElement, Table, bindparam, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import TENANT_PARAMETER, TenantScopeMissing, driver_connection, tenant_bound
from core.embedded_db import to_libpq_url
from core.errors import NotFound
from core.settings import Settings

# Called with the milliseconds of each statement a `TenantReads` runs (the driver's call to its answer),
# for benchmarks (`bench.common.SqlClock`); a statement is timed only while one is listed.
STATEMENT_TIMERS: list[Callable[[float], None]] = []


@dataclass(frozen=True)
class TenantRead:
    """A Core statement filtered by `:tenant_id`, compiled once for psycopg. `custom_plan`: never prepared,
    so PostgreSQL plans it for each run's parameters (a statement whose best plan depends on them)."""

    sql: str
    defaults: dict[str, Any]
    custom_plan: bool = False

    @classmethod
    def by_id(cls, table: Table, answer: type[BaseModel]) -> TenantRead:
        """`SELECT <the answer's fields> FROM table WHERE id = :record_id AND tenant_id = :tenant_id`."""
        tenant = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
        columns = [table.c[name] for name in answer.model_fields]
        return cls.of(
            select(*columns).where(
                table.c.id == bindparam("record_id", type_=PG_UUID(as_uuid=True)), table.c.tenant_id == tenant
            )
        )

    @classmethod
    def of(cls, statement: ClauseElement, *, custom_plan: bool = False) -> TenantRead:
        """Compile `statement` (refused when it names no `:tenant_id`, `core.database.tenant_bound`)."""
        compiled = tenant_bound(statement).compile(
            dialect=psycopg_dialect.dialect(), compile_kwargs={"render_postcompile": True}
        )
        return cls(str(compiled), dict(compiled.params), custom_plan)


class TenantReads:
    """The read statements of one request, for the caller's tenant: on the read pool, or on one connection
    (a session's, inside its transaction: `within`)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] | None,
        tenant_id: uuid.UUID,
        *,
        connection: AsyncConnection[Any] | None = None,
    ) -> None:
        self.pool = pool
        self.tenant_id = tenant_id
        self.connection = connection

    @classmethod
    async def within(cls, session: AsyncSession) -> TenantReads:
        """The reads of `session`'s tenant on its connection, inside its transaction (its flushed rows
        included). A session without a tenant is refused, a system session included."""
        tenant_id = session.info.get("tenant_id")
        if tenant_id is None:
            raise TenantScopeMissing("tenant reads in a session with no tenant")
        return cls(None, tenant_id, connection=await driver_connection(session))

    def _params(self, read: TenantRead, params: dict[str, Any]) -> dict[str, Any]:
        return {**read.defaults, **params, TENANT_PARAMETER: self.tenant_id}

    async def _execute(
        self, conn: AsyncConnection[Any], read: TenantRead, params: dict[str, Any]
    ) -> AsyncCursor[DictRow]:
        prepare = False if read.custom_plan else None  # psycopg prepares the others after a few runs
        cursor = conn.cursor(row_factory=dict_row)
        if not STATEMENT_TIMERS:
            return await cursor.execute(read.sql, self._params(read, params), prepare=prepare)
        started = time.perf_counter()
        await cursor.execute(read.sql, self._params(read, params), prepare=prepare)
        for timer in STATEMENT_TIMERS:
            timer((time.perf_counter() - started) * 1000)
        return cursor

    async def one(self, read: TenantRead, **params: Any) -> DictRow | None:
        """The first row of `read` for the tenant (None when there is none)."""
        if self.connection is not None:
            return await (await self._execute(self.connection, read, params)).fetchone()
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return await (await self._execute(conn, read, params)).fetchone()

    async def one_or_404(self, read: TenantRead, label: str, **params: Any) -> DictRow:
        """The first row of `read` for the tenant; NotFound (`label` not found) when there is none, whether
        it is missing or another tenant's."""
        row = await self.one(read, **params)
        if row is None:
            raise NotFound(f"{label} not found.")
        return row

    async def all(self, read: TenantRead, **params: Any) -> list[DictRow]:
        """Every row of `read` for the tenant."""
        if self.connection is not None:
            return await (await self._execute(self.connection, read, params)).fetchall()
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return await (await self._execute(conn, read, params)).fetchall()


def make_read_pool(url: str, settings: Settings) -> AsyncConnectionPool[AsyncConnection[DictRow]]:
    """psycopg's pool for `TenantReads` (opened by the app at start-up): autocommit (a read needs no
    BEGIN/COMMIT), rows as dicts, the engine's bounds: it grows on demand up to the engine's pool size plus
    its overflow (writes blocked on a lock hold the engine's connections, never these), with the same
    checkout and connect timeouts."""
    return AsyncConnectionPool(
        to_libpq_url(url),
        min_size=1,
        max_size=settings.db_pool_size + settings.db_max_overflow,
        timeout=settings.db_pool_timeout_seconds,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": settings.db_connect_timeout_seconds,
        },
        connection_class=AsyncConnection[DictRow],
        open=False,
        name="reads",
    )
