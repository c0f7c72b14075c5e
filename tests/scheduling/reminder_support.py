"""Helpers for the appointment workflow tests (reminders, replays, outages): booking through the API, the
messages an appointment recorded, and the time-skipping test server's clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from core.database import bind_tenant
from domain.communications.models import Communication
from tests.scheduling.conftest import API

BASE = f"{API}/appointments"


async def messages(sessionmaker, tenant_id: uuid.UUID, appointment_id: str) -> list[str]:
    """The idempotency keys of the messages recorded for an appointment, oldest first."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.scalars(
            select(Communication.idempotency_key)
            .where(Communication.appointment_id == uuid.UUID(appointment_id))
            .order_by(Communication.created_at)
        )
        return list(rows)


async def skip_to(env, when: datetime) -> None:
    """Advance the test server's clock to `when`."""
    now = await env.get_current_time()
    if when > now:
        await env.sleep(when - now)


async def book_at(client, auth, patient, practitioner, start: datetime) -> dict:
    resp = await client.post(
        BASE,
        json={
            "patient_id": str(patient.id),
            "practitioner_id": practitioner["id"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
        },
        headers=auth,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def server_now(env) -> datetime:
    return (await env.get_current_time()).replace(second=0, microsecond=0)
