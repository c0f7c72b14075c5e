"""Liveness and readiness probes."""

from __future__ import annotations

import httpx


async def test_health_answers_200_without_auth(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_ready_is_503_when_temporal_is_unreachable(client: httpx.AsyncClient, app: object) -> None:
    # The suite's settings point Temporal at a closed port; the database is up.
    state = app.state  # type: ignore[attr-defined]
    previous, state.temporal_client = state.temporal_client, None
    try:
        resp = await client.get("/ready")
    finally:
        state.temporal_client = previous
    assert resp.status_code == 503
    assert resp.json()["checks"] == {"database": "ok", "temporal": "down"}
