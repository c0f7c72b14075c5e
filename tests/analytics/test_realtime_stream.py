"""The real-time stream over a real HTTP server: a snapshot on connect, a fresh one after each change."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from core.settings import Settings
from tests.analytics.conftest import ANALYTICS, Clinic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server(settings: Settings, database_url: str) -> AsyncIterator[str]:
    """The API served by uvicorn on a free local port (streams need a real server)."""
    port = _free_port()
    app = create_app(settings, database_url=database_url)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await asyncio.wait_for(task, 10)


async def _next_snapshot(lines: Any) -> dict:
    async for line in lines:
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:").strip())
    raise AssertionError("stream ended")


async def test_a_new_ticket_pushes_a_fresh_snapshot_within_two_seconds(
    server: str, clinic: Clinic, token_for: Callable
) -> None:
    token = token_for(clinic.tenant_id)
    async with httpx.AsyncClient(base_url=server, timeout=10) as client:
        async with client.stream(
            "GET",
            f"{ANALYTICS}/realtime",
            params={"access_token": token},
            headers={"Accept": "text/event-stream"},
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            first = await asyncio.wait_for(_next_snapshot(lines), 5)
            assert first["open_tickets"] == 0
            resp = await client.post(
                "/api/v1/prm/tickets",
                json={"title": "Call back", "patient_id": str(clinic.patient_id)},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 201
            fresh = await asyncio.wait_for(_next_snapshot(lines), 2)
            assert fresh["open_tickets"] == 1


async def test_other_tenants_changes_push_nothing(
    server: str, clinic: Clinic, token_for: Callable, make_tenant: Callable
) -> None:
    from tests.analytics.conftest import make_clinic, now

    other = await make_clinic(await make_tenant(), clinic.sessionmaker)
    async with httpx.AsyncClient(base_url=server, timeout=10) as client:
        async with client.stream(
            "GET",
            f"{ANALYTICS}/realtime",
            headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token_for(clinic.tenant_id)}"},
        ) as stream:
            lines = stream.aiter_lines()
            await asyncio.wait_for(_next_snapshot(lines), 5)
            await other.appointment(now())
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_next_snapshot(lines), 1.0)
