"""`members_query` keeps to its tenant on its own: in a session of no tenant, inside INSERT ... SELECT, and
against rows of another tenant that name this tenant's patients."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import column, insert, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant, mark_system
from domain.cohorts.criteria import members_query
from domain.cohorts.schemas import CohortCriteria
from domain.journeys.models import Journey, JourneyInstance
from domain.patients.models import ChannelConsent
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from tests.cohorts.support import Clinic, born_years_ago
from tests.tenants import TenantFactory


async def _ids(session: AsyncSession, criteria: dict, tenant: uuid.UUID) -> set[uuid.UUID]:
    stmt = members_query(CohortCriteria.model_validate(criteria), tenant_id=tenant, now=datetime.now(UTC))
    return set((await session.scalars(stmt)).all())


async def test_members_query_keeps_to_its_tenant_in_a_system_session(
    clinic: Clinic,
    tenant_id: uuid.UUID,
    make_tenant: TenantFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = Clinic(system_sessionmaker, await make_tenant(name="Other Clinic"))
    mine = await clinic.patient(gender="female", date_of_birth=born_years_ago(60))
    await other.patient(gender="female", date_of_birth=born_years_ago(60))
    async with system_sessionmaker() as session:
        mark_system(session)
        assert await _ids(session, {"gender": ["female"], "age": {"min": 18}}, tenant_id) == {mine}


async def test_members_query_in_a_session_bound_to_its_tenant(
    clinic: Clinic, tenant_id: uuid.UUID, system_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    recall = await clinic.journey()
    on_it, off_it = await clinic.patient(), await clinic.patient()
    await clinic.on_journey(on_it, recall)
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        criteria = {"not_on_journey": {"journey_ids": [str(recall)]}, "consent": "email"}
        assert await _ids(session, criteria, tenant_id) == {off_it}


async def test_members_query_freezes_its_members_with_insert_from_select(
    clinic: Clinic,
    tenant_id: uuid.UUID,
    make_tenant: TenantFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = Clinic(system_sessionmaker, await make_tenant(name="Other Clinic"))
    mine = await clinic.patient(status="active")
    await other.patient(status="active")
    frozen = table("frozen_members", column("patient_id"))
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)  # an INSERT is not scoped by the session: the statement is
        await session.execute(text("CREATE TEMP TABLE frozen_members (patient_id uuid) ON COMMIT DROP"))
        members = members_query(
            CohortCriteria(status="active", last_visit={"never": True}),  # type: ignore[arg-type]
            tenant_id=tenant_id,
            now=datetime.now(UTC),
        )
        await session.execute(insert(frozen).from_select(["patient_id"], members))
        assert set((await session.scalars(select(frozen.c.patient_id))).all()) == {mine}


async def test_another_tenants_rows_naming_a_patient_do_not_count(
    clinic: Clinic,
    tenant_id: uuid.UUID,
    make_tenant: TenantFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Rows stamped with another tenant (which the API never writes) are invisible to every subquery."""
    patient = await clinic.patient()
    stranger = await make_tenant(name="Other Clinic")
    async with system_sessionmaker() as session:
        mark_system(session)
        practitioner = Practitioner(tenant_id=stranger, first_name="Ada", last_name="Other")
        journey = Journey(tenant_id=stranger, name="Theirs")
        session.add_all([practitioner, journey])
        await session.flush()
        start = datetime.now(UTC) + timedelta(days=2)
        session.add_all(
            [
                Appointment(
                    tenant_id=stranger,
                    patient_id=patient,
                    practitioner_id=practitioner.id,
                    start_time=start,
                    end_time=start + timedelta(minutes=30),
                ),
                JourneyInstance(tenant_id=stranger, journey_id=journey.id, patient_id=patient),
                ChannelConsent(tenant_id=stranger, patient_id=patient, channel="sms", opted_out=True),
            ]
        )
        await session.commit()
    async with system_sessionmaker() as session:
        mark_system(session)
        assert await _ids(session, {"has_upcoming_appointment": True}, tenant_id) == set()
        assert await _ids(session, {"on_journey": {}}, tenant_id) == set()
        assert await _ids(session, {"consent": "sms"}, tenant_id) == {patient}
