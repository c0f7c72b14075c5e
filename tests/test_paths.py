"""Record ids in paths (`api.paths`): a method that a resource's fixed sub-path does not take is 405, not a
422 from the record route beside it; a malformed id on a record route is still 422. A 405's `Allow` lists
every method of the path (`api.errors.allowed_methods`), whichever route the path matched first."""

from __future__ import annotations

import re
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
        ("DELETE", "/patients/search", "GET, POST"),
        ("PATCH", "/journeys/instances", "GET, POST"),
        ("DELETE", "/communications/templates", "GET, POST"),
        ("DELETE", "/journeys/instances/stats", "GET"),
    ],
)
async def test_a_method_a_fixed_path_does_not_take_is_405(
    client: httpx.AsyncClient, auth: dict[str, str], method: str, path: str, allowed: str
) -> None:
    resp = await client.request(method, f"{API}{path}", headers=auth)
    assert resp.status_code == 405, resp.text
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


SPEC: dict[str, Any] = create_app(Settings(env="test")).openapi()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _filled(path: str) -> str:
    """The path with each parameter filled with a value its route takes (an id, a template id, an MRN)."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


@pytest.mark.parametrize("path", sorted(SPEC["paths"]))
async def test_a_405_allows_exactly_the_methods_the_schema_declares_for_the_path(
    client: httpx.AsyncClient, auth: dict[str, str], path: str
) -> None:
    declared = [m.upper() for m in SPEC["paths"][path]]
    refused = [m for m in [*METHODS, "OPTIONS"] if m not in declared]
    allowed = [m for m in METHODS if m in declared]
    for method in refused:
        resp = await client.request(method, _filled(path), headers=auth)
        assert resp.status_code == 405, (method, path, resp.status_code, resp.text)
        assert resp.headers["Allow"] == ", ".join(allowed), (method, path)
        assert resp.json().get("detail") or resp.json().get("resourceType") == "OperationOutcome"
