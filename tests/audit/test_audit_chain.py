"""The trail cannot be changed: the database refuses UPDATE, DELETE and TRUNCATE, each tenant's records
form one hash chain even under concurrent requests, and `prm audit verify` finds a record altered behind
the trigger's back."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import (
    APPENDER_LOCK_TIMEOUT_MS,
    Actor,
    AuditBuffer,
    AuditPending,
    AuditRecord,
    append,
    chain_pending,
    chain_round,
)
from core.auth import Role
from core.embedded_db import to_libpq_url
from tests.audit.conftest import API, Trail
from tests.patients.support import CreatePatient, patient_body
from tests.stack.cli_support import prm
from tests.tenants import TenantFactory


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET user_sub = 'someone-else' WHERE tenant_id = %s",
        "DELETE FROM audit_records WHERE tenant_id = %s",
        "TRUNCATE audit_records",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_the_database_refuses_to_change_audit_records(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    trail: Trail,
    database_url: str,
    tenant_id: uuid.UUID,
    statement: str,
) -> None:
    await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    before = await trail()

    with (
        psycopg.connect(to_libpq_url(database_url)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement, (tenant_id,) if "%s" in statement else ())

    assert [(r.seq, r.user_sub, r.hash) for r in await trail()] == [
        (r.seq, r.user_sub, r.hash) for r in before
    ]


async def test_concurrent_requests_keep_one_unbroken_chain(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    create_patient: CreatePatient,
    trail: Trail,
    database_url: str,
    tenant_id: uuid.UUID,
) -> None:
    patient = await create_patient()
    writes = [client.post(f"{API}/patients", json=patient_body(), headers=auth) for _ in range(12)]
    reads = [client.get(f"{API}/patients/{patient['id']}", headers=auth) for _ in range(12)]

    async def flush_meanwhile() -> None:  # batches of reads race the writes' own records
        for _ in range(10):
            await asyncio.sleep(0.01)
            await app.state.audit_buffer.flush()

    *answers, _ = await asyncio.gather(*writes, *reads, flush_meanwhile())

    assert sorted({a.status_code for a in answers}) == [200, 201]
    records = await trail()
    assert [r.seq for r in records] == list(range(1, 26))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(records))
    result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "25\n" and "25 record(s) intact" in result.stderr


async def test_appenders_in_several_processes_chain_waiting_records_into_unbroken_chains(
    system_sessionmaker: async_sessionmaker[AsyncSession],
    make_tenant: TenantFactory,
    tenant_id: uuid.UUID,
    database_url: str,
    suite_appender_off: None,
) -> None:
    other = await make_tenant()
    # Three transactions leave records waiting, as the command line does (no appender of its own).
    for batch in range(3):
        async with system_sessionmaker() as session:
            events = [
                Actor(sub=f"cli:user{batch}").event(
                    tenant_id=tenant,
                    action="tenants.set_default_language",
                    resource_type="tenants",
                    resource_id=tenant,
                )
                for tenant in (tenant_id, other) * 5
            ]
            await append(session, events)
            await session.commit()

    async def appender() -> int:  # each of them one process's appender, taking 7 at a time
        async with system_sessionmaker() as session:
            taken = await chain_pending(session, limit=7)
            await session.commit()
        return taken

    taken = await asyncio.gather(*(appender() for _ in range(5)))

    assert sum(taken) == 30 and max(taken) <= 7
    async with system_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditPending)) == 0
        for tenant in (tenant_id, other):
            query = select(AuditRecord).where(AuditRecord.tenant_id == tenant).order_by(AuditRecord.seq)
            records = list(await session.scalars(query))
            assert [r.seq for r in records] == list(range(1, 16))
            assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(records))
    for tenant in (tenant_id, other):
        result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant))
        assert result.returncode == 0, result.stderr
        assert result.stdout == "15\n"


async def test_an_appender_stalled_mid_round_holds_the_others_up_for_a_bounded_time(
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    suite_appender_off: None,
) -> None:
    async with system_sessionmaker() as session:
        await append(
            session,
            [
                Actor(sub="cli:someone").event(
                    tenant_id=tenant_id,
                    action="tenants.set_default_language",
                    resource_type="tenants",
                    resource_id=tenant_id,
                )
            ],
        )
        await session.commit()
    appender = AuditBuffer(system_sessionmaker)

    async with system_sessionmaker() as stalled:  # another process's appender, stopped mid-round
        await chain_pending(stalled, limit=0)
        started = asyncio.get_running_loop().time()
        assert await appender.flush() == 0  # gave up: the record waits for a later round
        waited = asyncio.get_running_loop().time() - started
        assert APPENDER_LOCK_TIMEOUT_MS / 1000 <= waited < APPENDER_LOCK_TIMEOUT_MS / 1000 + 3
        await stalled.rollback()

    assert await appender.flush() == 1
    async with system_sessionmaker() as session:
        chained = await session.scalars(select(AuditRecord.action).where(AuditRecord.tenant_id == tenant_id))
        assert list(chained) == ["tenants.set_default_language"]


async def test_verify_names_the_first_record_altered_behind_the_triggers_back(
    client: httpx.AsyncClient,
    headers_for: Callable[..., dict[str, str]],
    create_patient: CreatePatient,
    trail: Trail,
    database_url: str,
    tenant_id: uuid.UUID,
) -> None:
    patient = await create_patient()
    for _ in range(3):
        await client.get(f"{API}/patients/{patient['id']}", headers=headers_for(tenant_id, Role.COORDINATOR))
    records = await trail()
    victim = records[2]

    # Someone who owns the table can switch the trigger off; the chain still gives them away.
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute("ALTER TABLE audit_records DISABLE TRIGGER trg_audit_records_append_only")
        conn.execute("UPDATE audit_records SET user_sub = 'nobody' WHERE id = %s", (victim.id,))
        conn.execute("ALTER TABLE audit_records ENABLE TRIGGER trg_audit_records_append_only")
    result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id))

    assert result.returncode == 1
    assert f"tenant {tenant_id}, record id {victim.id} (seq 3)" in result.stderr
    assert "does not match its hash" in result.stderr and result.stdout == ""


async def test_verify_finds_a_record_removed_from_the_middle(
    client: httpx.AsyncClient, auth: dict[str, str], trail: Trail, database_url: str, tenant_id: uuid.UUID
) -> None:
    for _ in range(3):
        await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    _first, second, third = await trail()

    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute("ALTER TABLE audit_records DISABLE TRIGGER trg_audit_records_append_only")
        conn.execute("DELETE FROM audit_records WHERE id = %s", (second.id,))
        conn.execute("ALTER TABLE audit_records ENABLE TRIGGER trg_audit_records_append_only")
    result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id))

    assert result.returncode == 1
    assert f"record id {third.id} (seq 3)" in result.stderr and "records are missing" in result.stderr


def test_verify_of_an_unknown_tenant_fails(database_url: str) -> None:
    result = prm(database_url, "audit", "verify", "--tenant-id", str(uuid.uuid4()))

    assert result.returncode == 1 and "no tenant with id" in result.stderr


async def test_records_with_awkward_characters_are_chained_as_they_were_written_and_verify(
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    database_url: str,
    suite_appender_off: None,
) -> None:
    """Records reach the table by COPY (`core.database.copy_rows`), whose text format gives tabs,
    newlines, backslashes and `\\N` meanings of their own: the values stored are the values hashed."""
    awkward = ["tab\there", "line\nbreak\r\n", "back\\slash", "\\N", "quote'\"", "naïve ✓ 医者", ""]
    events = [
        Actor(sub=sub, roles=("coordinator", "a\tb"), request_id=sub or None).event(
            tenant_id=tenant_id, action="patients.get", resource_type="patients", resource_id=uuid.uuid4()
        )
        for sub in awkward
    ]
    async with system_sessionmaker() as session:
        await chain_pending(session, events)
        await session.commit()

    async with system_sessionmaker() as session:
        query = select(AuditRecord).where(AuditRecord.tenant_id == tenant_id).order_by(AuditRecord.seq)
        records = list(await session.scalars(query))
    assert [(r.user_sub, r.user_roles, r.request_id) for r in records] == [
        (sub, ["a\tb", "coordinator"], sub or None) for sub in awkward
    ]
    result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(awkward)}\n"


async def test_the_workers_job_chains_a_backlog_in_bounded_rounds(
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    database_url: str,
    suite_appender_off: None,
) -> None:
    """600 waiting records (as the command line or a stopped API leaves them) are chained by the worker's
    `audit-chain` job in rounds of `BUFFER_ROUND`, each saying whether more may wait: its hashing never
    holds the worker's event loop for a whole backlog."""
    async with system_sessionmaker() as session:
        actor = Actor(sub="cli:backfill")
        events = [
            actor.event(
                tenant_id=tenant_id, action="tenants.configure", resource_type="tenants", resource_id=None
            )
            for _ in range(600)
        ]
        await append(session, events)
        await session.commit()

    rounds = []
    while True:
        async with system_sessionmaker() as session:
            before = await session.scalar(select(func.count()).select_from(AuditPending))
        more = await chain_round(system_sessionmaker)
        rounds.append((before, more))
        if not more:
            break

    assert rounds == [(600, True), (350, True), (100, False)]
    result = prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "600\n"
