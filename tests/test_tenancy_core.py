"""Tenant scoping in the database layer: the one place that keeps tenants apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from core.database import TenantScopeMissing, bind_tenant
from domain.practitioners.models import Practitioner


async def _add_practitioner(sessionmaker: Callable, tenant: uuid.UUID, last_name: str) -> uuid.UUID:
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        practitioner = Practitioner(first_name="Ann", last_name=last_name)
        session.add(practitioner)
        await session.commit()
        return practitioner.id


async def test_new_rows_take_the_sessions_tenant(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    tenant = await make_tenant()
    pid = await _add_practitioner(system_sessionmaker, tenant, "Stamp")
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant)
        row = await session.get(Practitioner, pid)
        assert row is not None and row.tenant_id == tenant


async def test_queries_only_see_the_sessions_tenant(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    a, b = await make_tenant(), await make_tenant()
    mine = await _add_practitioner(system_sessionmaker, a, "Mine")
    theirs = await _add_practitioner(system_sessionmaker, b, "Theirs")
    async with system_sessionmaker() as session:
        bind_tenant(session, a)
        ids = set((await session.scalars(select(Practitioner.id))).all())
    assert mine in ids
    assert theirs not in ids


async def test_bulk_update_cannot_reach_another_tenant(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    a, b = await make_tenant(), await make_tenant()
    theirs = await _add_practitioner(system_sessionmaker, b, "Untouched")
    async with system_sessionmaker() as session:
        bind_tenant(session, a)
        await session.execute(
            update(Practitioner).where(Practitioner.id == theirs).values(last_name="Hijacked")
        )
        await session.commit()
    async with system_sessionmaker() as session:
        bind_tenant(session, b)
        row = await session.scalar(select(Practitioner).where(Practitioner.id == theirs))
        assert row is not None and row.last_name == "Untouched"


async def test_a_session_without_tenant_refuses_tenant_scoped_queries(system_sessionmaker: Callable) -> None:
    async with system_sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await session.scalars(select(Practitioner))


async def test_a_row_of_another_tenant_cannot_be_written(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    a, b = await make_tenant(), await make_tenant()
    async with system_sessionmaker() as session:
        bind_tenant(session, a)
        session.add(Practitioner(first_name="X", last_name="Y", tenant_id=b))
        with pytest.raises(TenantScopeMissing):
            await session.flush()


async def test_aggregates_and_column_queries_are_scoped_too(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    from sqlalchemy import func

    a, b = await make_tenant(), await make_tenant()
    await _add_practitioner(system_sessionmaker, a, "Counted")
    for name in ("Other1", "Other2"):
        await _add_practitioner(system_sessionmaker, b, name)
    async with system_sessionmaker() as session:
        bind_tenant(session, a)
        count = await session.scalar(select(func.count()).select_from(Practitioner))
        names = (await session.scalars(select(Practitioner.last_name))).all()
        grouped = (
            await session.execute(
                select(Practitioner.last_name, func.count()).group_by(Practitioner.last_name)
            )
        ).all()
        subquery_count = await session.scalar(
            select(func.count()).select_from(select(Practitioner.id).subquery())
        )
    assert count == 1
    assert names == ["Counted"]
    assert [tuple(row) for row in grouped] == [("Counted", 1)]
    assert subquery_count == 1
