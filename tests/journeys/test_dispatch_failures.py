"""The trigger dispatcher's failure path: an event whose journey start keeps failing is retried each round,
set aside after `MAX_ATTEMPTS`, never holds up the events behind it, is visible to an operator (a log line
without patient data, a metric, `prm events set-aside`) and is retried with `prm events retry`.

The failure is a real one: a journey whose stored stage no longer parses (written by an older version, or
by hand), so placing a patient on it raises in the dispatcher's transaction, against the real database and
the real Temporal dev server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.events import DomainEvent, prune_dispatched
from domain.journeys.models import JourneyStage
from domain.journeys.set_aside import MAX_ATTEMPTS
from domain.journeys.trigger_dispatch import TriggerDispatcher
from tests.journeys.api_support import API, instances_of, register
from tests.journeys.conftest import Clinic
from tests.stack.cli_support import prm

MakeJourney = Callable[..., Awaitable[dict[str, Any]]]
SET_ASIDE_METRIC = "prm_domain_events_set_aside_total"


async def break_stages(clinic: Clinic, journey_id: str, actions: list[dict[str, Any]]) -> None:
    """Store `actions` on the journey's stages as they are, past the API's validation."""
    async with await clinic.session() as session:
        await session.execute(
            update(JourneyStage)
            .where(JourneyStage.journey_id == uuid.UUID(journey_id))
            .values(actions=actions)
        )
        await session.commit()


async def event(clinic: Clinic, event_id: int) -> DomainEvent:
    """The event as committed now."""
    async with await clinic.session() as session:
        row = await session.scalar(select(DomainEvent).where(DomainEvent.id == event_id))
        assert row is not None
        return row


@pytest.fixture
async def failing_event(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic, make_journey: MakeJourney
) -> tuple[int, str]:
    """A `patient.updated` event of the clinic's patient that a broken journey listens for; (its id, the
    journey's id)."""
    journey = await make_journey(name="Address check", trigger_conditions={"event": "patient.updated"})
    await break_stages(clinic, journey["id"], [{"type": "teleport"}])
    resp = await client.patch(f"{API}/patients/{clinic.patient_id}", json={"city": "Porto"}, headers=auth)
    assert resp.status_code == 200, resp.text
    async with await clinic.session() as session:
        event_id = await session.scalar(select(DomainEvent.id).where(DomainEvent.type == "patient.updated"))
    assert event_id is not None
    return event_id, journey["id"]


async def test_a_failing_event_is_retried_each_round_and_set_aside_after_the_last_attempt(
    clinic: Clinic, dispatcher: TriggerDispatcher, failing_event: tuple[int, str]
) -> None:
    event_id, _ = failing_event

    for attempt in range(1, MAX_ATTEMPTS):
        await dispatcher.round()
        waiting = await event(clinic, event_id)
        assert (waiting.dispatch_attempts, waiting.dispatched_at) == (attempt, None)
        assert waiting.dispatch_error == "ValidationError"

    await dispatcher.round()
    set_aside = await event(clinic, event_id)
    assert set_aside.dispatch_attempts == MAX_ATTEMPTS and set_aside.dispatched_at is not None
    await dispatcher.round()
    assert (await event(clinic, event_id)).dispatch_attempts == MAX_ATTEMPTS  # no longer tried


async def test_events_behind_a_failing_one_keep_flowing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    make_journey: MakeJourney,
    failing_event: tuple[int, str],
) -> None:
    onboarding = await make_journey(is_default=True)
    newcomer = await register(client, auth)  # emitted after the failing event

    outcome = await dispatcher.round()

    assert outcome.started == 1
    assert len(await instances_of(clinic, onboarding["id"], newcomer)) == 1
    assert (await event(clinic, failing_event[0])).dispatch_attempts == 1


async def test_a_set_aside_event_is_logged_without_patient_data_and_counted(
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    failing_event: tuple[int, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_id, _ = failing_event
    before = REGISTRY.get_sample_value(SET_ASIDE_METRIC) or 0.0

    with caplog.at_level(logging.INFO, logger="domain.journeys.trigger_dispatch"):
        for _ in range(MAX_ATTEMPTS + 1):
            await dispatcher.round()

    assert (REGISTRY.get_sample_value(SET_ASIDE_METRIC) or 0.0) == before + 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == (
        f"event {event_id} (patient.updated) set aside after {MAX_ATTEMPTS} failed attempts "
        f"(ValidationError); once fixed: prm events retry {event_id}"
    )
    logged = caplog.text
    for phi in ("Maria", "Garcia", "+14155550123", "maria@example.com", "Porto"):
        assert phi not in logged


async def test_an_operator_lists_and_retries_a_set_aside_event_once_its_journey_is_fixed(
    clinic: Clinic, dispatcher: TriggerDispatcher, failing_event: tuple[int, str], database_url: str
) -> None:
    event_id, journey_id = failing_event
    for _ in range(MAX_ATTEMPTS):
        await dispatcher.round()

    listed = prm(database_url, "events", "set-aside", "--tenant-id", str(clinic.tenant_id))
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert line.split("\t")[:5] == [
        str(event_id),
        str(clinic.tenant_id),
        "patient.updated",
        str(MAX_ATTEMPTS),
        "ValidationError",
    ]

    await break_stages(clinic, journey_id, [])  # the operator fixes the journey's stage
    retried = prm(database_url, "events", "retry", str(event_id))
    assert retried.returncode == 0, retried.stderr
    await dispatcher.round()

    done = await event(clinic, event_id)
    assert done.dispatched_at is not None and (done.dispatch_attempts, done.dispatch_error) == (0, None)
    assert len(await instances_of(clinic, journey_id, clinic.patient_id)) == 1
    empty = prm(database_url, "events", "set-aside", "--tenant-id", str(clinic.tenant_id))
    assert empty.returncode == 0 and empty.stdout == ""


async def test_retry_refuses_an_event_that_is_not_set_aside_or_does_not_exist(
    clinic: Clinic, dispatcher: TriggerDispatcher, failing_event: tuple[int, str], database_url: str
) -> None:
    event_id, _ = failing_event
    await dispatcher.round()  # failed once: still the dispatcher's

    waiting = prm(database_url, "events", "retry", str(event_id))
    assert waiting.returncode == 1
    assert f"event {event_id} is not set aside" in waiting.stderr
    missing = prm(database_url, "events", "retry", "999999999")
    assert missing.returncode == 1 and "no event with id 999999999" in missing.stderr
    assert (await event(clinic, event_id)).dispatch_attempts == 1


async def test_a_set_aside_event_outlives_the_retention_that_prunes_dispatched_ones(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    dispatcher: TriggerDispatcher,
    failing_event: tuple[int, str],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    event_id, _ = failing_event
    await register(client, auth)  # an event dispatched without trouble
    for _ in range(MAX_ATTEMPTS):
        await dispatcher.round()
    async with await clinic.session() as session:  # both happened long ago
        await session.execute(update(DomainEvent).values(occurred_at=datetime.now(UTC) - timedelta(days=100)))
        await session.commit()

    async with system_sessionmaker() as session:
        await prune_dispatched(session, older_than=timedelta(days=90))

    async with await clinic.session() as session:
        left = (await session.scalars(select(DomainEvent.id))).all()
    assert left == [event_id]
