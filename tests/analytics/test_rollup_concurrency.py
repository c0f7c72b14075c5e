"""Concurrent writers of one tenant do not queue on its counter rows: the counts are bumped when each
transaction commits (migration 0034), so one still open holds no counter row another needs, and the
counts come out the same, a rebuild in the writing transaction included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.analytics.models import AppointmentDaily, CommunicationDaily
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant
from tests.analytics.conftest import Clinic
from tests.analytics.test_rollups_match_base_tables import _rollup_rows

TODAY_NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


# Each writer writes for another patient at another time (a patient's messages are paired in order, and a
# practitioner's appointments may not overlap: both wait for the other writer by design), on the same
# day and key, so they share the tenant's counter rows.


def _message(clinic: Clinic, patient: uuid.UUID, n: int) -> Any:
    return clinic.message(
        "outbound", TODAY_NOON + timedelta(minutes=n), "Your results are in", patient_id=patient
    )


def _appointment(clinic: Clinic, patient: uuid.UUID, n: int) -> Any:
    start = TODAY_NOON + timedelta(days=2, hours=n)
    return Appointment(
        patient_id=patient,
        practitioner_id=clinic.practitioner_id,
        start_time=start,
        end_time=start + timedelta(minutes=30),
        status="booked",
    )


async def _counted(sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic, rollup: Any) -> int:
    async with sessionmaker() as session:
        bind_tenant(session, clinic.tenant_id)
        return int(await session.scalar(select(func.coalesce(func.sum(rollup.n), 0))) or 0)


@pytest.mark.parametrize(
    ("row", "rollup"),
    [(_message, CommunicationDaily), (_appointment, AppointmentDaily)],
    ids=["messages", "appointments"],
)
async def test_a_writer_commits_while_another_of_the_same_tenant_day_and_key_is_still_open(
    clinic: Clinic,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    row: Callable[[Clinic, uuid.UUID, int], Any],
    rollup: Any,
) -> None:
    other = await clinic.new_patient()
    async with system_sessionmaker() as first:
        bind_tenant(first, clinic.tenant_id)
        first.add(row(clinic, clinic.patient_id, 0))
        await first.flush()  # written, its transaction open: before migration 0034 it held the counter row

        # Another writer of the same tenant, day and key commits without waiting for the first.
        await asyncio.wait_for(clinic.add(row(clinic, other, 1)), timeout=5)
        assert await _counted(system_sessionmaker, clinic, rollup) == 1

        await first.commit()

    assert await _counted(system_sessionmaker, clinic, rollup) == 2


async def test_a_rebuild_in_the_writing_transaction_counts_each_row_once(
    clinic: Clinic, system_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with system_sessionmaker() as session:
        bind_tenant(session, clinic.tenant_id)
        # Counts pending when the zone changes, and one written after the rebuild.
        session.add_all([_message(clinic, clinic.patient_id, 0), _appointment(clinic, clinic.patient_id, 0)])
        await session.flush()
        await session.execute(
            update(Tenant).where(Tenant.id == clinic.tenant_id).values(timezone="Asia/Kolkata")
        )
        session.add(_message(clinic, clinic.patient_id, 1))
        await session.commit()

    assert await _counted(system_sessionmaker, clinic, CommunicationDaily) == 2
    assert await _counted(system_sessionmaker, clinic, AppointmentDaily) == 1
    kept = await _rollup_rows(system_sessionmaker, clinic.tenant_id)
    await clinic.rebuild()
    assert await _rollup_rows(system_sessionmaker, clinic.tenant_id) == kept
