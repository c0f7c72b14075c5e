"""Requests that only read run statement by statement (no BEGIN/COMMIT round trips), refuse to write, and
still get a transaction when they ask for a setting that lives in one (`SET LOCAL`)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import ReadOnlySession, bind_tenant, make_read_sessionmaker
from domain.patients.models import Patient


@pytest.fixture
def engine(app: object) -> AsyncEngine:
    """The app's engine (its pool is shared by the read sessions)."""
    return app.state.engine  # type: ignore[attr-defined]


async def test_a_read_session_runs_outside_any_transaction(engine: AsyncEngine, tenant_id: uuid.UUID) -> None:
    async with make_read_sessionmaker(engine)() as session:
        bind_tenant(session, tenant_id)
        await session.scalars(select(Patient))
        now, statement_at = (await session.execute(text("SELECT now(), statement_timestamp()"))).one()
        # Outside a transaction each statement is its own: its transaction starts with the statement.
        assert now == statement_at


async def test_a_read_session_refuses_to_write(engine: AsyncEngine, tenant_id: uuid.UUID) -> None:
    async with make_read_sessionmaker(engine)() as session:
        bind_tenant(session, tenant_id)
        session.add(Patient(first_name="Ann", last_name="Lee", mrn="MRN-READONLY", status="active"))
        with pytest.raises(ReadOnlySession):
            await session.flush()


async def test_set_local_in_a_read_session_opens_a_transaction_for_the_rest_of_it(
    engine: AsyncEngine, tenant_id: uuid.UUID
) -> None:
    async with make_read_sessionmaker(engine)() as session:
        bind_tenant(session, tenant_id)
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        assert (await session.scalar(text("SHOW plan_cache_mode"))) == "force_custom_plan"
    async with make_read_sessionmaker(engine)() as session:  # the setting ended with that session
        assert (await session.scalar(text("SHOW plan_cache_mode"))) == "auto"
