"""A running campaign's progress reaches the real-time stream: each batch is a change the stream hears of,
and its snapshot names the campaign with its counts."""

from __future__ import annotations

import asyncio
import contextlib
import json

from domain.analytics.realtime import MetricsListener
from tests.campaigns.support import API, cohort_of_everyone, launch
from tests.polling import eventually


async def test_each_batch_of_a_running_campaign_reaches_the_real_time_stream(
    client, auth, clinic, database_url, system_sessionmaker, temporal_env, temporal_worker, tenant_id
) -> None:
    for i in range(2):
        await clinic.patient(last_name=f"Live{i}")
    listener = MetricsListener.for_database(database_url, system_sessionmaker)
    received: list[dict] = []
    async with listener.subscribe(tenant_id) as subscription:

        async def read() -> None:
            async for snapshot in subscription:
                received.append(json.loads(snapshot))

        reader = asyncio.create_task(read())
        try:
            cohort = await cohort_of_everyone(client, auth)
            launched = await launch(
                client, auth, cohort_id=cohort, journey_id=await clinic.journey(), pace_per_minute=1
            )

            def progress() -> list[tuple[str, int, int]]:
                return [
                    (c["status"], c["enrolled"], c["pending"])
                    for s in received
                    for c in s["campaigns"]
                    if c["id"] == launched["id"]
                ]

            async def first_batch_heard() -> bool:
                return ("running", 1, 1) in progress()

            await eventually(first_batch_heard, "the first batch on the stream")
            assert (
                await client.post(f"{API}/campaigns/{launched['id']}/pause", headers=auth)
            ).status_code == 200

            async def pause_heard() -> bool:
                return ("paused", 1, 1) in progress()

            await eventually(pause_heard, "the pause on the stream")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await listener.close()
