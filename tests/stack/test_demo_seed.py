"""`prm seed --demo` on a fresh database: the demo clinic, seeded once, and what the API then shows of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select, text

from api.app import create_app
from cli.demo import demo_highlights
from cli.seed import seed_and_commit
from core.database import make_engine, make_sessionmaker, mark_system
from core.migrate import scratch_database
from core.settings import Settings
from domain.tenants.models import Tenant


@pytest.fixture(scope="module")
def demo_database_url(database_url: str) -> Iterator[str]:
    """A migrated database with no tenant at all (the demo only ever fills an empty one)."""
    with scratch_database(database_url, "prm_demo") as url:
        yield url


@dataclass
class Seeded:
    """The demo clinic's tenant and the row counts after seeding twice."""

    tenant_id: uuid.UUID
    second_created: bool
    counts: dict[str, int]


COUNTED = ["tenants", "practitioners", "patients", "locations", "time_slots", "appointments", "journeys",
           "journey_instances", "communications", "message_sentiments", "tickets",
           "workflow_commands"]  # fmt: skip


@pytest.fixture(scope="module")
async def seeded(demo_database_url: str, settings: Settings) -> AsyncIterator[Seeded]:
    """Seed the demo clinic without Temporal (its workflow commands wait for a relay), then try again."""
    engine = make_engine(demo_database_url, settings)
    sessions = make_sessionmaker(engine)
    try:
        outcomes = []
        for _ in range(2):
            async with sessions() as session:
                mark_system(session)
                outcomes.append(await seed_and_commit(session, demo=True))
        async with sessions() as session:
            counts = {t: int(await session.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in COUNTED}  # noqa: S608
        assert outcomes[0].tenant_id is not None
        yield Seeded(outcomes[0].tenant_id, outcomes[1].created, counts)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def demo_api(demo_database_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API over the demo database."""
    app_settings = settings.model_copy(update={"database_url": demo_database_url})
    application = create_app(app_settings, database_url=demo_database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1/prm") as c:
            yield c


async def test_demo_seed_creates_the_clinic(seeded: Seeded) -> None:
    counts = seeded.counts
    assert counts["tenants"] == 1
    assert counts["patients"] == 100
    assert counts["practitioners"] == 4
    assert counts["locations"] == 1
    assert counts["time_slots"] > 50
    assert counts["appointments"] > 100
    assert counts["journeys"] == 3  # onboarding, post-surgery, and the recall campaign's
    assert counts["journey_instances"] >= 20
    assert counts["communications"] > 100
    assert counts["message_sentiments"] > 20
    assert counts["tickets"] >= 5
    # Every workflow the present needs (reminders, running journeys, SLA clocks, messages on their way) has
    # its start recorded with the rows, for the worker's relay: none is delivered without a Temporal here.
    assert counts["workflow_commands"] >= counts["tickets"] + 20


async def test_demo_seed_runs_once(seeded: Seeded) -> None:
    assert seeded.second_created is False


async def test_demo_has_past_upcoming_and_every_kind_of_outcome(
    seeded: Seeded, demo_database_url: str, settings: Settings
) -> None:
    engine = make_engine(demo_database_url, settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.execute(text("SELECT status, count(*) FROM appointments GROUP BY status"))
            appointments = {status: count for status, count in rows.all()}
            rows = await session.execute(
                text("SELECT status, count(*) FROM journey_instances GROUP BY status")
            )
            instances = {status: count for status, count in rows.all()}
            rows = await session.execute(text("SELECT DISTINCT priority FROM tickets"))
            priorities = {p for (p,) in rows.all()}
    finally:
        await engine.dispose()
    assert {"completed", "no_show", "cancelled", "booked", "confirmed"} <= set(appointments)
    assert {"active", "completed", "cancelled"} <= set(instances)
    assert instances["cancelled"] == 1
    assert len(priorities) >= 3


async def test_demo_dashboard_shows_appointments_messages_and_journeys(
    seeded: Seeded, demo_api: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    headers = {"Authorization": f"Bearer {token_for(seeded.tenant_id, 'admin')}"}

    dashboard = await demo_api.get("/analytics/dashboard", headers=headers)
    instances = await demo_api.get("/journeys/instances", headers=headers)

    assert dashboard.status_code == 200, dashboard.text
    body = dashboard.json()
    assert body["appointments"]["total"] > 0
    assert body["appointments"]["completed"] > 0
    assert body["communication"]["outbound"] > 0
    assert body["communication"]["inbound"] > 0
    assert body["communication"]["sentiment"]["scored"] > 0
    assert body["journeys"]["active"] > 0
    assert body["journeys"]["completed"] > 0
    assert body["tickets"]["open"] > 0
    assert instances.status_code == 200, instances.text
    assert instances.json()["total"] > 0


async def test_demo_highlights_point_at_a_patient_with_a_waiting_journey(
    seeded: Seeded, demo_database_url: str, settings: Settings
) -> None:
    engine = make_engine(demo_database_url, settings)
    try:
        async with make_sessionmaker(engine)() as session:
            mark_system(session)
            highlights = await demo_highlights(session, seeded.tenant_id)
            tenants = await session.scalar(select(func.count()).select_from(Tenant))
    finally:
        await engine.dispose()
    assert tenants == 1
    assert highlights is not None
    assert highlights.instance_id is not None


async def test_demo_has_a_finished_recall_campaign_with_results_worth_reading(
    seeded: Seeded, demo_api: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    headers = {"Authorization": f"Bearer {token_for(seeded.tenant_id, 'admin')}"}
    (recall,) = (await demo_api.get("/campaigns", headers=headers)).json()["items"]
    assert recall["status"] == "completed"
    assert recall["counts"]["enrolled"] > 10 and recall["counts"]["pending"] == 0
    results = (await demo_api.get(f"/campaigns/{recall['id']}/results", headers=headers)).json()
    total = results["total"]
    assert total["messaged"] == total["sent"] == results["enrolled"]
    assert total["opted_out"] == 1
    assert 0 < total["replied"] < total["messaged"] and 0 < total["booked"] < total["messaged"]
