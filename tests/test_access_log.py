"""The access log: one line per answer, with the route template, status and time, never ids or a query."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import httpx
import pytest


async def test_each_answer_is_logged_with_its_route_template_not_its_path_or_query(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    headers_for: Callable[..., dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    patient = uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="prm.access"):
        resp = await client.get(f"/api/v1/prm/patients/{patient}?q=Jane", headers=headers_for(tenant_id))
    assert resp.status_code == 404
    lines = [r for r in caplog.records if r.name == "prm.access"]
    assert len(lines) == 1
    record = lines[0]
    assert record.http["route"] == "/api/v1/prm/patients/{patient_id}"  # type: ignore[attr-defined]
    assert record.http["status"] == 404  # type: ignore[attr-defined]
    assert record.request_id == resp.headers["X-Request-ID"]  # type: ignore[attr-defined]
    text = record.getMessage()
    assert str(patient) not in text and "Jane" not in text
    assert text.startswith("GET /api/v1/prm/patients/{patient_id} 404 ")
