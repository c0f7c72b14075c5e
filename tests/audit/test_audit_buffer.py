"""Reads are recorded in batches off the request path, and none is lost when the API shuts down; a write's
record, committed with it, is chained right after the commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from core import audit
from core.settings import Settings
from tests.audit.conftest import API, Trail
from tests.patients.support import patient_body
from tests.polling import eventually

Rounds = list[tuple[int, int]]


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> Rounds:
    """Each appender round of the test, as it happens: (queued reads it took, waiting records it took)."""
    seen: Rounds = []
    chain = audit.chain_pending

    async def counted(session: Any, events: Any = (), **kwargs: Any) -> int:
        taken = await chain(session, events, **kwargs)
        seen.append((len(events), taken))
        return taken

    monkeypatch.setattr(audit, "chain_pending", counted)
    return seen


async def test_queued_reads_are_appended_when_the_app_shuts_down(
    settings: Settings,
    database_url: str,
    auth: dict[str, str],
    trail: Trail,
    tenant_id: uuid.UUID,
) -> None:
    slow = settings.model_copy(update={"audit_flush_interval_seconds": 60.0})  # only the shutdown flushes
    app = create_app(slow, database_url=database_url)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(3):
                assert (await client.get(f"{API}/patients", headers=auth)).status_code == 200
        assert app.state.audit_buffer.queued == 3
        assert await trail(flush=False) == []

    assert [r.action for r in await trail(flush=False)] == ["patients.list"] * 3


async def test_reads_are_appended_by_the_background_flush(
    client: httpx.AsyncClient, auth: dict[str, str], trail: Trail
) -> None:
    assert (await client.get(f"{API}/patients", headers=auth)).status_code == 200

    records = await eventually(lambda: trail(flush=False), "the read's record", within=5)

    assert [r.action for r in records] == ["patients.list"]


async def test_a_writes_record_joins_the_chain_right_after_its_commit(
    settings: Settings,
    database_url: str,
    auth: dict[str, str],
    trail: Trail,
    suite_appender_off: None,
) -> None:
    slow = settings.model_copy(update={"audit_flush_interval_seconds": 60.0})  # no round in this test
    writer = create_app(slow, database_url=database_url)

    async with writer.router.lifespan_context(writer):
        transport = httpx.ASGITransport(app=writer)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            resp = await client.post(f"{API}/patients", json=patient_body(), headers=auth)
            assert resp.status_code == 201

            # The commit woke the app's appender: the record is chained long before the next round.
            records = await eventually(lambda: trail(flush=False), "the write's record", within=5)

    assert [r.action for r in records] == ["patients.create"]


async def test_a_long_queue_is_chained_in_bounded_rounds_in_its_order(
    settings: Settings,
    database_url: str,
    trail: Trail,
    tenant_id: uuid.UUID,
    suite_appender_off: None,
    rounds: Rounds,
) -> None:
    """600 queued reads are chained in rounds of at most `BUFFER_ROUND`, a transaction each (the event loop
    serves requests between them), and take their places in the order they were queued."""
    slow = settings.model_copy(update={"audit_flush_interval_seconds": 60.0})  # only this test's flush
    app = create_app(slow, database_url=database_url)
    start = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(600)]
    async with app.router.lifespan_context(app):
        buffer = app.state.audit_buffer
        for n, record_id in enumerate(ids):
            buffer.add(
                audit.AuditEvent(
                    tenant_id=tenant_id,
                    user_sub="reader",
                    user_roles=("viewer",),
                    action="patients.read",
                    resource_type="patients",
                    outcome=audit.AuditOutcome.ALLOWED,
                    occurred_at=start + timedelta(microseconds=n),
                    resource_id=record_id,
                )
            )
        assert await buffer.flush() == 600
        assert buffer.queued == 0

    reads = [events for events, _ in rounds]
    assert reads[:3] == [audit.BUFFER_ROUND, audit.BUFFER_ROUND, 600 - 2 * audit.BUFFER_ROUND]
    records = await trail(flush=False)
    assert [r.resource_id for r in records] == ids
    assert [r.seq for r in records] == list(range(records[0].seq, records[0].seq + 600))


async def test_writes_committed_while_the_appender_lingers_share_its_round(
    settings: Settings,
    database_url: str,
    auth: dict[str, str],
    trail: Trail,
    suite_appender_off: None,
    rounds: Rounds,
) -> None:
    """The first commit wakes the appender, which waits `linger` for the writes committing meanwhile and
    chains their records in one round: not a transaction per write."""
    slow = settings.model_copy(update={"audit_flush_interval_seconds": 60.0})  # only the wakes start rounds
    writer = create_app(slow, database_url=database_url)
    async with writer.router.lifespan_context(writer):
        writer.state.audit_buffer.linger = 2.0  # longer than the five writes take, even on a slow machine
        transport = httpx.ASGITransport(app=writer)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(5):
                resp = await client.post(f"{API}/patients", json=patient_body(), headers=auth)
                assert resp.status_code == 201

            async def all_five() -> list[Any] | None:
                found = await trail(flush=False)
                return found if len(found) == 5 else None

            records = await eventually(all_five, "the five writes' records", within=10)

    assert [r.action for r in records] == ["patients.create"] * 5
    assert [taken for _, taken in rounds if taken] == [5]
