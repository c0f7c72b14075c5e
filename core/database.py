"""Database engine, sessions, the declarative base, and tenant scoping in one place."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from sqlalchemy import (
    ClauseElement,
    DateTime,
    Executable,
    FetchedValue,
    ForeignKey,
    Integer,
    MetaData,
    Result,
    TextClause,
    event,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    with_loader_criteria,
)

from core.audit_key import ENGINE_OPTION, audit_key
from core.embedded_db import start_embedded_postgres, to_sqlalchemy_url
from core.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table. A flush reads back what the database set (server defaults,
    computed columns, `updated_at = now()`) with RETURNING on the INSERT or UPDATE itself: no second
    SELECT to see a row just written."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    __mapper_args__ = {"eager_defaults": True}


class TimestampMixin:
    """`created_at` / `updated_at`, set by the database, never by clients."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Versioned:
    """`version`: 1 when the row is made, raised by one by a database trigger on every UPDATE (migration
    0029), read back with the UPDATE's RETURNING. FHIR's `meta.versionId` and `ETag`."""

    version: Mapped[int] = mapped_column(
        Integer, server_default="1", server_onupdate=FetchedValue(), nullable=False
    )


class TenantScoped(TimestampMixin):
    """A row that belongs to one tenant. Every ORM query on it is filtered by the session's tenant."""

    id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
    )


class TenantScopeMissing(RuntimeError):
    """A tenant-scoped query ran in a session that names no tenant and is not a system session."""


def bind_tenant(session: AsyncSession | Session, tenant_id: uuid.UUID) -> None:
    """Scope every later query and insert of `session` to `tenant_id`."""
    session.info["tenant_id"] = tenant_id


def mark_system(session: AsyncSession | Session) -> None:
    """Let `session` see every tenant (CLI, migrations, seeding): never used for a request."""
    session.info["system"] = True


def scope_to(session: AsyncSession | Session, tenant_id: uuid.UUID | None) -> None:
    """Scope `session` to one tenant, or (None) let it see every tenant: how periodic jobs sweep."""
    if tenant_id is None:
        mark_system(session)
    else:
        bind_tenant(session, tenant_id)


@event.listens_for(Session, "do_orm_execute")
def _scope_queries_to_tenant(state: ORMExecuteState) -> None:
    """Add `tenant_id = :tenant` to every ORM SELECT, UPDATE and DELETE touching a tenant-scoped table."""
    if not (state.is_select or state.is_update or state.is_delete):
        return
    tenant_id = state.session.info.get("tenant_id")
    if tenant_id is None:
        if state.session.info.get("system"):
            return
        mappers = state.all_mappers
        if any(issubclass(m.class_, TenantScoped) for m in mappers):
            raise TenantScopeMissing("tenant-scoped query in a session with no tenant")
        return
    prebuilt = _PREBUILT.get(id(state.statement))
    if prebuilt is not None and prebuilt[0] is state.statement:
        # A statement built once: scope it once per tenant too, so SQLAlchemy's cache key of the scoped
        # statement (memoized on the object) is computed once rather than on every execution.
        scoped = prebuilt[1].get(tenant_id)
        if scoped is None:
            if len(prebuilt[1]) >= MAX_SCOPED_PER_STATEMENT:
                prebuilt[1].clear()
            scoped = prebuilt[1][tenant_id] = state.statement.options(_tenant_criteria(tenant_id))
        state.statement = scoped
        return
    state.statement = state.statement.options(_tenant_criteria(tenant_id))


MAX_SCOPED_PER_STATEMENT = 4096
_PREBUILT: dict[int, tuple[Any, dict[uuid.UUID, Any]]] = {}

S = TypeVar("S", bound=Executable)


def prebuilt(statement: S) -> S:
    """Mark a statement built once at import (bind parameters for what varies) and run many times: its
    tenant-scoped form is kept per tenant (see `_scope_queries_to_tenant`). Only for module-level
    statements: each one is remembered for the life of the process."""
    _PREBUILT[id(statement)] = (statement, {})
    return statement


TENANT_PARAMETER = "tenant_id"


C = TypeVar("C", bound=ClauseElement)
R = TypeVar("R")


def tenant_bound(statement: C) -> C:
    """Check a Core statement for the hottest reads (`core.reads.TenantRead`): it must filter by a
    `:tenant_id` bind parameter of its own, which only the caller's tenant fills. A statement without the
    parameter is refused here, at import; that it filters *each* of its tables is for its own tests to
    show (tests/test_tenancy_core.py)."""
    if TENANT_PARAMETER not in statement.compile(dialect=postgresql.dialect()).params:
        raise TenantScopeMissing(f"a tenant-bound statement needs a :{TENANT_PARAMETER} parameter")
    return statement


async def execute_tenant_bound(
    session: AsyncSession, statement: Executable, params: dict[str, Any] | None = None
) -> Result[Any]:
    """Run a `tenant_bound` statement for the session's tenant (on its connection, so inside its
    transaction when it has one). A session without a tenant is refused, a system session included: such a
    statement is for requests, which always have one."""
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None:
        raise TenantScopeMissing("tenant-bound statement in a session with no tenant")
    connection = await session.connection()
    return await connection.execute(statement, {**(params or {}), TENANT_PARAMETER: tenant_id})


@functools.lru_cache(maxsize=4096)
def _tenant_criteria(tenant_id: uuid.UUID) -> Any:
    """The `tenant_id = :tenant` criteria of one tenant, built once (not on every statement of a request)."""
    return with_loader_criteria(
        TenantScoped,
        lambda cls: cls.tenant_id == tenant_id,
        include_aliases=True,
        track_closure_variables=False,
    )


@event.listens_for(Session, "before_flush")
def _stamp_and_guard_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    """New rows take the session's tenant; a row of another tenant can never be written."""
    tenant_id = session.info.get("tenant_id")
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        if tenant_id is None:
            if session.info.get("system"):
                continue
            raise TenantScopeMissing("tenant-scoped write in a session with no tenant")
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise TenantScopeMissing("refusing to write a row that belongs to another tenant")


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded PostgreSQL under PRM_DATA_DIR (started if needed)."""
    if settings.database_url:
        return to_sqlalchemy_url(settings.database_url)
    return start_embedded_postgres(settings.embedded_pgdata)


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An async engine on psycopg 3 with a bounded pool and bounded waits.

    While the database is down every checkout fails within the connect timeout (or the pool timeout when
    every connection is busy) rather than hanging the request. There is no ping before each checkout (a
    round trip on every request): a connection the outage killed fails its first statement instead, which
    is a 503, and that failure retires every pooled connection (`api.errors`: they all died with it), so
    the next requests connect afresh and the service recovers by itself when the database returns
    (tests/test_unavailability.py).

    The pool keeps the connections it opens (`db_pool_size`, 20 by default): SQLAlchemy closes an
    overflow connection when it is returned, so with the old defaults of 10 kept and 10 overflow an API
    serving 32 writes at once opened a PostgreSQL connection for one write in twelve (behind wrk) to one in
    three (in process): a backend started and torn down each time, about 5 ms of CPU.

    The engine carries the audit trail's key (`core.audit_key`): every session on it signs the records it
    appends with that key.
    """
    return create_async_engine(
        url,
        execution_options={ENGINE_OPTION: audit_key(settings)},
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,
        connect_args={"connect_timeout": settings.db_connect_timeout_seconds},
        hide_parameters=True,  # a failed statement's error never quotes its values (patient data)
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses are built after the commit)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (GET, HEAD, OPTIONS): each statement runs on its own, with no
    BEGIN and COMMIT around them (two round trips of a three-round-trip read). Under READ COMMITTED every
    statement of a transaction takes its own snapshot anyway, so a read sees exactly what it would have
    seen inside one. Such a session refuses to write (`ReadOnlySession`): a write there would not be
    atomic with the rest of the request."""
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(autocommit, expire_on_commit=False, autoflush=False, info={"read_only": True})


class ReadOnlySession(RuntimeError):
    """A request that only reads tried to write (ORM flush or DML) in its statement-by-statement session."""


@event.listens_for(Session, "before_flush")
def _refuse_flush_when_read_only(session: Session, _ctx: Any, _instances: Any) -> None:
    if session.info.get("read_only") and (session.new or session.dirty or session.deleted):
        raise ReadOnlySession("a read-only request tried to write (ORM flush)")


@event.listens_for(Session, "do_orm_execute")
def _refuse_dml_when_read_only(state: ORMExecuteState) -> None:
    if not state.session.info.get("read_only"):
        return
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySession("a read-only request tried to write (INSERT, UPDATE or DELETE)")
    statement = state.statement
    if isinstance(statement, TextClause) and statement.text.lstrip()[:9].upper() == "SET LOCAL":
        # A setting for the rest of the request's reads (e.g. a planner setting for a search): it needs
        # a transaction to live in, so the read opens one here; it ends when the connection is returned.
        connection = state.session.connection()
        driver = connection.connection.driver_connection
        if driver is not None and driver.info.transaction_status == TransactionStatus.IDLE:
            connection.exec_driver_sql("BEGIN")


AfterCommit = Callable[[], Awaitable[None]]


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint a failed statement violated (None when the driver did not say)."""
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None)


async def insert_once(
    session: AsyncSession, row: R, *, constraint: str, existing: Callable[[], Awaitable[R | None]]
) -> tuple[R, bool]:
    """Insert `row` in a savepoint: (row, True); or, when `constraint` (its idempotency key's unique index)
    refused it because a concurrent request inserted first, (that request's row, False). The database
    decides between two concurrent inserts; the session stays usable either way."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        if violated_constraint(exc) == constraint and (found := await existing()) is not None:
            return found, False
        raise
    return row, True


async def copy_rows(session: AsyncSession, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (each naming the same columns) into `table` in `session`'s transaction with
    PostgreSQL's COPY: no RETURNING, no ORM events, the server's defaults for the columns left out.

    For a batch of hundreds it costs a fraction of an INSERT through SQLAlchemy's executemany: 250 audit
    records take 3 ms of CPU, against 9 ms as a Core INSERT and 11-16 ms through the ORM."""
    if not rows:
        return
    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    driver = await driver_connection(session)
    async with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            await copy.write_row([row[column] for column in columns])


async def driver_connection(session: AsyncSession) -> AsyncConnection[Any]:
    """The psycopg connection under `session`'s (in its transaction): for what SQLAlchemy would only slow
    down (COPY, `core.reads`' compiled statements)."""
    connection = await (await session.connection()).get_raw_connection()
    return cast("AsyncConnection[Any]", connection.driver_connection)


async def advisory_xact_lock(session: AsyncSession, key: str) -> None:
    """Queue the transactions that lock the same `key` until this one ends (PostgreSQL advisory lock)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def transaction_held(session: AsyncSession, key: str) -> dict[Any, Any]:
    """What the session's current transaction read once and keeps under `key` (in `session.info`): the
    later reads of one unit of work find it here instead of asking again. A new transaction starts with an
    empty one, so nothing read before its snapshot is trusted in it."""
    if session.sync_session.get_transaction() is None:
        await session.connection()  # begins the transaction a first read would begin (no round trip)
    transaction = session.sync_session.get_transaction()
    held = session.info.get(key)
    if held is None or held[0] is not transaction:
        held = session.info[key] = (transaction, {})
    return held[1]


def after_commit(session: AsyncSession, job: AfterCommit, *, once: bool = False) -> None:
    """Queue `job` to run once the request's transaction has committed (e.g. starting a workflow); with
    `once`, not again if the same job is already queued."""
    jobs: list[AfterCommit] = session.info.setdefault("after_commit", [])
    if not (once and job in jobs):
        jobs.append(job)


async def run_after_commit_jobs(session: AsyncSession) -> None:
    """Run (and forget) the jobs queued with `after_commit`."""
    jobs: list[AfterCommit] = session.info.pop("after_commit", [])
    for job in jobs:
        await job()
