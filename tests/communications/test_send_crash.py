"""Workers killed (SIGKILL) between Twilio taking a message and the send step recording it: no message is
sent twice, and every one ends sent once Twilio's status callback comes.

Real worker processes (`python worker.py`) on the Temporal dev server, the real Twilio SDK against the fake
server, which creates each message at once but holds its answer until the worker sending it is dead. The
callbacks come to the API in process, signed as Twilio signs them, some before the send step's retry and
some after it.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from core.database import bind_tenant
from core.gateway import WorkflowGateway
from domain.communications.models import Communication
from tests.communications.provider_support import PUBLIC_BASE, TWILIO_SID, TWILIO_TOKEN, FakeProviders
from tests.communications.support import record_sms, set_tenant
from tests.communications.webhook_support import HOOKS, twilio_post
from tests.polling import eventually
from tests.worker_processes import kill, start_worker

ROUNDS, PER_ROUND = 4, 5  # 20 trials: each message's sender is killed after Twilio took it


def _worker_environ(fake: FakeProviders) -> dict[str, str]:
    """Twilio credentials pointing the worker's SDK at the fake server; callbacks signed for PUBLIC_BASE."""
    return {
        "PRM_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "PRM_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PRM_TWILIO_SMS_FROM": "+14155550000",
        "PRM_TWILIO_BASE_URL": fake.url,
        "PRM_PUBLIC_BASE_URL": PUBLIC_BASE,
        # Longer than the test: every attempt here must be settled by its callback, never by the window.
        "PRM_SEND_RESOLVE_SECONDS": "600",
        "PRM_WORKER_METRICS_PORT": "0",
    }


def _requests_per_message(fake: FakeProviders) -> Counter[str]:
    """How many Twilio requests each communication got (its id is in the StatusCallback's query)."""
    counts: Counter[str] = Counter()
    for form in fake.twilio_forms():
        counts[dict(parse_qsl(urlsplit(form["StatusCallback"]).query))["communication_id"]] += 1
    return counts


async def _call_back(client: Any, fake: FakeProviders, sid: str, delay: float) -> None:
    """Twilio's status callback for message `sid`, on the URL it was given, after `delay` seconds."""
    await asyncio.sleep(delay)
    url = fake.twilio_created[sid]["StatusCallback"]
    params = {"MessageSid": sid, "MessageStatus": "sent", "AccountSid": TWILIO_SID}
    answer = await twilio_post(client, url.removeprefix(f"{PUBLIC_BASE}{HOOKS}"), params)
    assert answer.status_code == 204, answer.text


async def test_workers_killed_after_twilio_took_their_messages_send_none_twice(
    client: Any,
    providers_configured: FakeProviders,
    dev_env: WorkflowEnvironment,
    database_url: str,
    system_sessionmaker: Any,
    tenant_id: uuid.UUID,
    make_patient: Any,
) -> None:
    fake = providers_configured
    queue = f"send-crash-{uuid.uuid4().hex[:8]}"

    gateway = WorkflowGateway.of_client(dev_env.client, queue)
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    patients = [await make_patient() for _ in range(ROUNDS * PER_ROUND)]  # one each: no frequency cap
    rng = random.Random(21)
    callbacks: list[asyncio.Task[None]] = []
    ids: list[str] = []
    environ = _worker_environ(fake)
    worker = await start_worker(dev_env, database_url, queue, **environ)
    try:
        for round_ in range(ROUNDS):
            fake.twilio_hold = hold = threading.Event()
            taken = set(fake.twilio_accepted)
            batch = [
                str(await record_sms(system_sessionmaker, tenant_id, p, gateway=gateway))
                for p in patients[round_ * PER_ROUND : (round_ + 1) * PER_ROUND]
            ]
            ids += batch

            async def all_taken(batch: list[str] = batch) -> bool:
                return all(_requests_per_message(fake)[i] for i in batch)

            await eventually(all_taken, f"Twilio to take round {round_}'s messages", within=60)
            await kill(worker)  # Twilio has them all; no answer reached the worker
            hold.set()
            worker = await start_worker(dev_env, database_url, queue, **environ)
            # Twilio calls back on each, some before the send step's retry (5 s heartbeat timeout, 5 s
            # back-off) looks, some after it found the attempt open and backed off.
            callbacks += [
                asyncio.create_task(_call_back(client, fake, sid, rng.uniform(0, 15)))
                for sid in fake.twilio_accepted
                if sid not in taken
            ]

        async def all_sent() -> bool:
            async with system_sessionmaker() as session:
                bind_tenant(session, tenant_id)
                statuses = await session.scalars(
                    select(Communication.status).where(Communication.id.in_([uuid.UUID(i) for i in ids]))
                )
                return sorted(statuses) == ["sent"] * len(ids)

        await eventually(all_sent, "every message to end sent", within=60, interval=0.5)
        await asyncio.gather(*callbacks)
        for communication_id in ids:  # each delivery workflow ended with its message sent
            handle = dev_env.client.get_workflow_handle(f"communication-{communication_id}")
            result = await asyncio.wait_for(handle.result(), timeout=60)
            assert result["status"] == "sent", result
    finally:
        fake.twilio_hold = None
        await kill(worker)
        for task in callbacks:
            task.cancel()
    counts = _requests_per_message(fake)
    assert sorted(counts[i] for i in ids) == [1] * len(ids), counts  # none sent twice
    # Only this test's messages count (the worker's relay serves every tenant; other tests' pending commands
    # are dropped when they end, `no_pending_commands_left`, but the count does not depend on it).
