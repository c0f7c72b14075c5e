"""Demo data for a fresh database: one clinic with a few practitioners and patients (all fictional), or
with `demo=True` the whole demo clinic of `cli.demo` (appointments, journeys, messages, tickets)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cli.demo import seed_demo_clinic
from cli.demo_roster import PRACTITIONERS, DemoPatient
from core.database import bind_tenant, run_after_commit_jobs
from core.gateway import WorkflowGateway, bind_gateway
from core.phones import to_e164
from domain.enums import Channel, Gender
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.tenants.models import Tenant
from domain.tenants.schemas import TenantCreate
from domain.tenants.service import create_tenant

DEMO_TENANT_NAME = "Demo Clinic"
DEMO_TIMEZONE = "America/New_York"
# Two `prm run`s starting at once must not both seed: they serialise on this advisory lock.
_SEED_LOCK_KEY = 0x50524D5345454400  # "PRMSEED\0"


# 555-01xx numbers and example.com addresses are reserved for fiction: nobody is ever messaged.
# The small seed: the demo clinic's first three practitioners and five patients.
# fmt: off
_PATIENTS = [
    DemoPatient("MRN-DEMO-0001", "Maria", "Garcia", date(1968, 3, 14), Gender.FEMALE, "+1 415 555 0121",
                 "maria.garcia@example.com", "Brooklyn", "NY", Channel.SMS, "es"),
    DemoPatient("MRN-DEMO-0002", "James", "Okafor", date(1975, 11, 2), Gender.MALE, "+1 415 555 0122",
                 "james.okafor@example.com", "Queens", "NY", Channel.WHATSAPP, "en"),
    DemoPatient("MRN-DEMO-0003", "Emily", "Novak", date(1990, 6, 27), Gender.FEMALE, "+1 415 555 0123",
                 "emily.novak@example.com", "New York", "NY", Channel.EMAIL, "en"),
    DemoPatient("MRN-DEMO-0004", "Daniel", "Kim", date(1957, 1, 9), Gender.MALE, "+1 415 555 0124",
                 "daniel.kim@example.com", "Jersey City", "NJ", Channel.SMS, "ko"),
    DemoPatient("MRN-DEMO-0005", "Aisha", "Rahman", date(1984, 9, 18), Gender.FEMALE, "+1 415 555 0125",
                 "aisha.rahman@example.com", "Hoboken", "NJ", Channel.SMS, "en"),
]
# fmt: on


@dataclass(frozen=True)
class SeedOutcome:
    """The demo tenant (None if the database holds only other tenants) and whether this call created it."""

    tenant_id: uuid.UUID | None
    created: bool


async def find_demo_tenant(session: AsyncSession) -> Tenant | None:
    """The oldest active tenant named like the demo one, if any."""
    stmt = (
        select(Tenant)
        .where(Tenant.name == DEMO_TENANT_NAME, Tenant.is_active.is_(True))
        .order_by(Tenant.created_at)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def default_tenant(session: AsyncSession) -> Tenant | None:
    """The tenant `prm run` mints its token for: the demo tenant, else the oldest active tenant."""
    demo = await find_demo_tenant(session)
    if demo is not None:
        return demo
    stmt = select(Tenant).where(Tenant.is_active.is_(True)).order_by(Tenant.created_at).limit(1)
    return (await session.scalars(stmt)).first()


async def seed_demo_tenant(session: AsyncSession, *, demo: bool = False) -> SeedOutcome:
    """Create the demo clinic with its practitioners and patients, only if the database has no tenant;
    with `demo`, the whole demo clinic (`cli.demo`).

    `session` must be a system session; the caller commits (`seed_and_commit` does). Everything is written
    in that one transaction, the demo's workflow commands too, so a database is either empty or fully
    seeded, and its workflows start once the commands are delivered.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEED_LOCK_KEY})
    tenant_count = await session.scalar(select(func.count()).select_from(Tenant))
    if tenant_count:
        existing = await find_demo_tenant(session)
        return SeedOutcome(tenant_id=existing.id if existing else None, created=False)

    tenant = await create_tenant(session, TenantCreate(name=DEMO_TENANT_NAME, timezone=DEMO_TIMEZONE))
    bind_tenant(session, tenant.id)
    if demo:
        await seed_demo_clinic(session, clinic_name=DEMO_TENANT_NAME, timezone=DEMO_TIMEZONE)
        return SeedOutcome(tenant_id=tenant.id, created=True)
    for doc in PRACTITIONERS[:3]:
        session.add(
            Practitioner(
                first_name=doc.first_name,
                last_name=doc.last_name,
                gender=doc.gender.value,
                qualification=doc.qualification,
                speciality=doc.speciality,
                sub_speciality=doc.sub_speciality,
                license_number=doc.license_number,
                phone_primary=to_e164(doc.phone, "US"),
                email_primary=doc.email,
            )
        )
    for person in _PATIENTS:
        session.add(
            Patient(
                mrn=person.mrn,
                first_name=person.first_name,
                last_name=person.last_name,
                date_of_birth=person.date_of_birth,
                gender=person.gender.value,
                phone_primary=to_e164(person.phone, "US"),
                email_primary=person.email,
                city=person.city,
                state=person.state,
                country="US",
                preferred_channel=person.preferred_channel.value,
                preferred_language=person.preferred_language,
                timezone=DEMO_TIMEZONE,
            )
        )
    await session.flush()
    return SeedOutcome(tenant_id=tenant.id, created=True)


async def seed_and_commit(
    session: AsyncSession, *, demo: bool, gateway: WorkflowGateway | None = None
) -> SeedOutcome:
    """`seed_demo_tenant`, committed; its workflow commands are delivered right away through `gateway`
    (None, or Temporal unreachable: by the worker's relay once it runs)."""
    if gateway is not None:
        bind_gateway(session, gateway)
    outcome = await seed_demo_tenant(session, demo=demo)
    await session.commit()
    await run_after_commit_jobs(session)
    return outcome
