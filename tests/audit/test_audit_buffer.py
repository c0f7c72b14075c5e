"""Reads are recorded in batches off the request path, and none is lost when the API shuts down; a write's
record, committed with it, is chained right after the commit."""

from __future__ import annotations

import uuid

import httpx

from api.app import create_app
from core.settings import Settings
from tests.audit.conftest import API, Trail
from tests.patients.support import patient_body
from tests.polling import eventually


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
