"""Audit trail fixtures: the records of a tenant, read straight from the table once the reads' buffer has
been flushed."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditRecord
from tests.patients.support import CreatePatient, Records, patient_factory

API = "/api/v1/prm"
Trail = Callable[..., Awaitable[list[AuditRecord]]]


@pytest.fixture
def trail(app: Any, system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Trail:
    """The tenant's audit records in chain order, after appending the reads still queued (unless told not
    to, to see only what was committed with the writes)."""

    async def read(*, flush: bool = True, tenant: uuid.UUID | None = None) -> list[AuditRecord]:
        if flush:
            await app.state.audit_buffer.flush()
        async with system_sessionmaker() as session:
            stmt = select(AuditRecord).where(AuditRecord.tenant_id == (tenant or tenant_id))
            return list(await session.scalars(stmt.order_by(AuditRecord.seq)))

    return read


@pytest.fixture
def create_patient(client: httpx.AsyncClient, auth: dict[str, str]) -> CreatePatient:
    """Register a patient through the API (as the test tenant's coordinator) and return the response."""
    return patient_factory(client, auth)


@pytest.fixture
def records(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Records:
    """Factories for the rows a patient owns, in this test's tenant."""
    return Records(system_sessionmaker, tenant_id)


@pytest.fixture
def suite_appender_off(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's API chains nothing during the test (its appender neither woken nor run), as if its
    process had died right after its commits: the test's own appenders are the only ones."""

    async def idle() -> int:
        return 0

    monkeypatch.setattr(app.state.audit_buffer, "flush", idle)
    monkeypatch.setattr(app.state.audit_buffer, "wake", idle)
