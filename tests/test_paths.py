"""Record ids in paths (`api.paths`): a method that a resource's fixed sub-path does not take is 405, not a
422 from the record route beside it; a malformed id on a record route is still 422."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.paths import RESERVED
from core.settings import Settings

API = "/api/v1/prm"


def test_every_fixed_segment_beside_a_record_id_is_reserved() -> None:
    spec: dict[str, Any] = create_app(Settings(env="test")).openapi()
    paths = [path.strip("/").split("/") for path in spec["paths"]]
    beside_ids = {
        other[i]
        for path in paths
        for i, segment in enumerate(path)
        if segment.startswith("{") and segment != "{template_id}" and segment != "{mrn}"
        for other in paths
        if len(other) > i and other[:i] == path[:i] and not other[i].startswith("{")
    }
    assert beside_ids and beside_ids <= RESERVED


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/appointments/stats", "GET"),
        ("PATCH", "/appointments/today", "GET"),
        ("DELETE", "/patients/search", "GET"),
        ("PATCH", "/journeys/instances", "GET"),
        ("DELETE", "/communications/templates", "GET"),
        ("DELETE", "/journeys/instances/stats", "GET"),
    ],
)
async def test_a_method_a_fixed_path_does_not_take_is_405(
    client: httpx.AsyncClient, auth: dict[str, str], method: str, path: str, allowed: str
) -> None:
    resp = await client.request(method, f"{API}{path}", headers=auth)
    assert resp.status_code == 405, resp.text
    # Starlette's `Allow` names the methods of the first route that matched the path (GET before POST).
    assert resp.json() == {"detail": "Method Not Allowed"} and resp.headers["Allow"] == allowed


async def test_a_malformed_record_id_is_still_422_naming_the_parameter(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.delete(f"{API}/appointments/not-an-id", headers=auth)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["path", "appointment_id"]
    assert (await client.get(f"{API}/appointments/stats", headers=auth)).status_code == 200
    missing = await client.get(f"{API}/appointments/{uuid.uuid4()}", headers=auth)
    assert missing.status_code == 404
