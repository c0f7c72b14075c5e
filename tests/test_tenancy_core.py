"""Tenant scoping in the database layer: the one place that keeps tenants apart."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql

from core.database import TenantScopeMissing, bind_tenant, mark_system, tenant_bound
from core.errors import NotFound
from core.reads import TenantRead, TenantReads, make_read_pool
from core.settings import Settings
from domain.communications.models import Communication
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.records import reads as record_reads
from domain.records.reads import PATIENT_DETAIL


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


# ---- Core statements that filter by tenant themselves (`tenant_bound`) -------------------------------


def test_a_tenant_bound_statement_must_name_the_tenant() -> None:
    with pytest.raises(TenantScopeMissing):
        tenant_bound(select(Practitioner.__table__.c.id))
    tenant_bound(select(Practitioner.__table__.c.id).where(Practitioner.tenant_id == bindparam("tenant_id")))


@pytest.fixture
async def read_pool(database_url: str, settings: Settings) -> AsyncIterator[Any]:
    """`core.reads`' pool, as the app opens it."""
    pool = make_read_pool(database_url, settings)
    await pool.open()
    yield pool
    await pool.close()


async def test_the_patient_detail_reads_only_the_callers_tenant(
    system_sessionmaker: Callable, make_tenant: Callable, read_pool: Any
) -> None:
    """Every table the hand-filtered statement reads is filtered: a message row of another tenant that
    names this patient (nothing but the tenant filter keeps it out) is not counted, and another tenant
    cannot read the patient at all."""
    mine, theirs = await make_tenant(), await make_tenant()
    patient = await _add_patient(system_sessionmaker, mine)
    async with system_sessionmaker() as session:
        mark_system(session)
        for tenant in (mine, theirs, theirs):
            session.add(Communication(tenant_id=tenant, patient_id=patient, channel="sms", message="x"))
        await session.commit()
    row = await record_reads.patient_detail(TenantReads(read_pool, mine), patient)
    assert row["id"] == patient and row["total_communications"] == 1
    with pytest.raises(NotFound):
        await record_reads.patient_detail(TenantReads(read_pool, theirs), patient)


async def test_a_read_takes_its_tenant_from_the_caller_alone(
    system_sessionmaker: Callable, make_tenant: Callable, read_pool: Any
) -> None:
    """A `tenant_id` passed with the statement's other parameters does not replace the caller's."""
    mine, theirs = await make_tenant(), await make_tenant()
    patient = await _add_patient(system_sessionmaker, mine)
    reads = TenantReads(read_pool, theirs)
    assert await reads.one(record_reads.PATIENT_DETAIL_READ, patient_id=patient, tenant_id=mine) is None


async def test_reads_within_a_session_see_its_flushed_rows_and_only_its_tenant(
    system_sessionmaker: Callable, make_tenant: Callable
) -> None:
    """`TenantReads.within`: the session's transaction (a row it flushed and has not committed), its
    tenant (another tenant's row, or a tenant-less session, gets nothing)."""
    mine, theirs = await make_tenant(), await make_tenant()
    elsewhere = await _add_patient(system_sessionmaker, theirs)
    async with system_sessionmaker() as session:
        bind_tenant(session, mine)
        patient = Patient(mrn=f"MRN-{uuid.uuid4().hex[:10]}", first_name="Ann", last_name="Flushed")
        session.add(patient)
        await session.flush()
        reads = await TenantReads.within(session)
        row = await record_reads.patient_detail(reads, patient.id)
        assert (row["id"], row["last_name"]) == (patient.id, "Flushed")
        with pytest.raises(NotFound):
            await record_reads.patient_detail(reads, elsewhere)
        await session.rollback()
    async with system_sessionmaker() as session:
        mark_system(session)
        with pytest.raises(TenantScopeMissing):
            await TenantReads.within(session)


def test_the_patient_detail_filters_each_table_it_reads() -> None:
    sql = str(PATIENT_DETAIL.compile(dialect=postgresql.dialect()))
    tables = set(re.findall(r"FROM (\w+)", sql))
    assert tables == {"patients", "appointments", "journey_instances", "tickets", "communications"}
    for table in tables:
        assert f"{table}.tenant_id = %(tenant_id)s" in sql, table


async def _add_patient(sessionmaker: Callable, tenant: uuid.UUID) -> uuid.UUID:
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        patient = Patient(mrn=f"MRN-{uuid.uuid4().hex[:10]}", first_name="Ann", last_name="Core")
        session.add(patient)
        await session.commit()
        return patient.id


def _hot_reads() -> dict[str, TenantRead]:
    from domain.communications import reads as message_reads
    from domain.journeys import reads as journey_reads
    from domain.patients import reads as patient_reads
    from domain.scheduling import reads as appointment_reads

    found = {
        "patient detail": record_reads.PATIENT_DETAIL_READ,
        "appointment": appointment_reads.APPOINTMENT,
        "communication": message_reads.COMMUNICATION,
        "journey instance": journey_reads.INSTANCE,
        "journey instance stages": journey_reads.STAGES,
    }
    for shape, (page, count) in patient_reads.LISTS.items():
        found[f"patient list {shape}"], found[f"patient count {shape}"] = page, count
    for shape, today in appointment_reads.TODAY.items():
        found[f"appointments today {shape}"] = today
    for shape, upcoming in appointment_reads.UPCOMING.items():
        found[f"appointments upcoming {shape}"] = upcoming
    found["appointment details"] = appointment_reads.APPOINTMENT_DETAILS
    found.update(message_reads.search_reads())
    return found


@pytest.mark.parametrize("name", sorted(_hot_reads()))
def test_every_hot_read_filters_each_table_it_reads_by_the_tenant(name: str) -> None:
    """Each table read (after FROM or JOIN) is filtered by the caller's tenant: `tenants`, the one table
    that is not tenant-scoped, by its id. A name the statement defines itself (`WITH hits AS (...)`) is
    no table: what it reads is checked where it reads it."""
    sql = _hot_reads()[name].sql
    defined = set(re.findall(r"(?:WITH|,)\s+(\w+) AS\s*\(", sql))
    tables = set(re.findall(r"(?:FROM|JOIN) (\w+)", sql)) - defined
    assert tables
    for table in tables:
        column = "id" if table == "tenants" else "tenant_id"
        assert f"{table}.{column} = %(tenant_id)s" in sql, (name, table)
