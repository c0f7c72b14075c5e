"""`GET /audit`: the tenant's trail for administrators, filtered by patient, user, action, outcome and time,
in the reference's envelope."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.auth import Role
from tests.audit.conftest import API, Trail
from tests.patients.support import CreatePatient

Headers = Callable[..., dict[str, str]]


async def test_only_administrators_read_the_trail(
    client: httpx.AsyncClient, headers_for: Headers, tenant_id: uuid.UUID, trail: Trail
) -> None:
    for role in (Role.COORDINATOR, Role.VIEWER, Role.OPERATOR):
        resp = await client.get(f"{API}/audit", headers=headers_for(tenant_id, role))
        assert resp.status_code == 403, role

    resp = await client.get(f"{API}/audit", headers=headers_for(tenant_id, Role.ADMIN))
    assert resp.status_code == 200
    assert {r.action for r in await trail()} == {"audit.list"}  # reading the trail is on the trail


async def test_the_trail_filters_by_patient_user_action_and_outcome(
    app: Any,
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    headers_for: Headers,
    tenant_id: uuid.UUID,
    create_patient: CreatePatient,
) -> None:
    first, second = await create_patient(), await create_patient()
    nurse = {"Authorization": f"Bearer {token_for(tenant_id, Role.PRACTITIONER, sub='nurse-joy')}"}
    await client.get(f"{API}/patients/{first['id']}", headers=nurse)
    await client.get(f"{API}/patients/{second['id']}/360", headers=nurse)
    await client.post(f"{API}/patients/{second['id']}/activate", headers=nurse)  # 403: merge permission
    await app.state.audit_buffer.flush()
    admin = headers_for(tenant_id, Role.ADMIN)

    async def actions(**params: Any) -> list[str]:
        resp = await client.get(f"{API}/audit", params=params, headers=admin)
        assert resp.status_code == 200, resp.text
        return [item["action"] for item in resp.json()["items"]]

    assert await actions(patient_id=second["id"]) == [
        "patients.activate",
        "patients.get_360",
        "patients.create",
    ]
    assert await actions(user="nurse-joy") == ["patients.activate", "patients.get_360", "patients.get"]
    assert await actions(action="patients.create") == ["patients.create", "patients.create"]
    assert await actions(outcome="denied") == ["patients.activate"]


async def test_the_trail_filters_by_time_and_pages(
    client: httpx.AsyncClient, headers_for: Headers, tenant_id: uuid.UUID, create_patient: CreatePatient
) -> None:
    for _ in range(3):
        await create_patient()
    admin = headers_for(tenant_id, Role.ADMIN)
    now = datetime.now(UTC)

    page = (await client.get(f"{API}/audit", params={"page_size": 2}, headers=admin)).json()
    later = await client.get(
        f"{API}/audit", params={"since": (now + timedelta(minutes=1)).isoformat()}, headers=admin
    )
    earlier = await client.get(f"{API}/audit", params={"until": now.isoformat()}, headers=admin)

    assert {k: page[k] for k in ("total", "page", "page_size", "has_next", "has_previous")} == {
        "total": 3,
        "page": 1,
        "page_size": 2,
        "has_next": True,
        "has_previous": False,
    }
    assert [i["seq"] for i in page["items"]] == [3, 2]
    assert later.json()["total"] == 0 and earlier.json()["total"] == 3


async def test_another_tenants_trail_is_never_shown(
    client: httpx.AsyncClient,
    headers_for: Headers,
    create_patient: CreatePatient,
    make_tenant: Callable[..., Awaitable[uuid.UUID]],
) -> None:
    await create_patient()
    other = await make_tenant(name="Other Clinic")

    resp = await client.get(f"{API}/audit", headers=headers_for(other, Role.ADMIN))

    assert resp.status_code == 200 and resp.json()["total"] == 0


async def test_a_date_beyond_the_calendar_is_refused(
    client: httpx.AsyncClient, headers_for: Headers, tenant_id: uuid.UUID
) -> None:
    resp = await client.get(
        f"{API}/audit",
        params={"since": "9999-12-31T23:00:00-05:00"},
        headers=headers_for(tenant_id, Role.ADMIN),
    )

    assert resp.status_code == 422
