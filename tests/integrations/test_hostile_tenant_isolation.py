"""One tenant cannot stall the others: while a practitioner of one tenant sends templates built to run for
seconds and a FHIR search with thousands of parameters, another tenant's requests are answered as quickly
as ever, and the hostile requests are refused with a 4xx. It measures isolation, not our own speed: the
bound is generous for a busy machine, and far below the seconds each hostile request took unbounded."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx

from core.auth import Role
from tests.integrations.fhir_support import API, FHIR, register
from tests.tenants import TenantFactory

WORST_LATENCY_SECONDS = 0.5  # of the other tenant's requests, while the hostile ones run
HOSTILE_TEMPLATES = [
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(100) %}{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{{ lipsum(n=100000) }}",
    "{{ 'x'|center(300000000) }}",
    "{{ '%0300000000d' % 1 }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
]


async def test_a_tenants_hostile_requests_do_not_hold_up_another_tenant(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    auth: dict[str, str],
    fhir_auth: dict[str, str],
    headers_for: Callable[..., dict[str, str]],
    make_tenant: TenantFactory,
) -> None:
    practitioner = headers_for(tenant_id, Role.PRACTITIONER)
    patient = await register(client, auth)
    other = headers_for(await make_tenant(name="Other Clinic"))
    await register(client, other, first_name="Grace", last_name="Hopper")
    hostile_done = asyncio.Event()

    async def other_tenant() -> list[float]:
        latencies = []
        while not hostile_done.is_set():
            started = time.perf_counter()
            response = await client.get(f"{API}/patients", headers=other)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.json()["total"] == 1
            await asyncio.sleep(0.02)
        return latencies

    async def send(template: str) -> httpx.Response:
        message = {"patient_id": patient["id"], "channel": "sms", "message": template}
        return await client.post(f"{API}/communications", json=message, headers=practitioner)

    async def hostile() -> list[httpx.Response]:
        await asyncio.sleep(0.2)  # the other tenant's requests are under way first
        try:
            return list(
                await asyncio.gather(
                    *(send(template) for template in HOSTILE_TEMPLATES),
                    client.get(f"{FHIR}/Patient?" + "&".join(["gender=female"] * 3000), headers=fhir_auth),
                )
            )
        finally:
            hostile_done.set()

    latencies, answers = await asyncio.gather(other_tenant(), hostile())

    assert len(latencies) >= 3
    assert max(latencies) < WORST_LATENCY_SECONDS, sorted(latencies)[-5:]
    assert [a.status_code for a in answers] == [422] * len(HOSTILE_TEMPLATES) + [400]
