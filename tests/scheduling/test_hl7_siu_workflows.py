"""SIU messages drive the appointment's workflow as the API does: an S12 booking starts its reminders and an
S15 cancellation stops them and sends the one cancellation message (time-skipping Temporal server)."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from core.audit import Actor
from core.client_credentials import Scope
from core.database import bind_tenant, mark_system
from domain.integrations.service import create_client
from domain.scheduling.models import Appointment
from tests.integrations.hl7_messages import siu
from tests.polling import eventually
from tests.scheduling.reminder_support import messages, server_now, skip_to

wait_for = functools.partial(eventually, within=10.0)


async def hl7_headers(client: httpx.AsyncClient, sessionmaker, tenant_id: uuid.UUID) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A token of a new HL7 client of the tenant, as an EHR gets it."""
    async with sessionmaker() as session:
        mark_system(session)
        issued = await create_client(
            session, tenant_id=tenant_id, name="EHR", scopes={Scope.HL7}, actor=Actor(sub="cli:tester")
        )
        await session.commit()
    form = {
        "grant_type": "client_credentials",
        "client_id": issued.client.client_id,
        "client_secret": issued.secret,
    }
    token = (await client.post("/oauth/token", data=form)).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}


def ack_code(response: httpx.Response) -> str:
    """MSA-1."""
    return next(line.split("|")[1] for line in response.text.split("\r") if line.startswith("MSA|"))


async def test_s15_cancels_the_appointment_its_reminders_and_tells_the_patient_once(
    client: httpx.AsyncClient, tenant_id, temporal_env, temporal_worker, system_sessionmaker
) -> None:
    headers = await hl7_headers(client, system_sessionmaker, tenant_id)
    start = await server_now(temporal_env) + timedelta(days=3)

    booked = await client.post(
        "/hl7/v2", content=siu("S12", "MRN-S15", "APPT-S15", start).encode(), headers=headers
    )
    assert ack_code(booked) == "AA", booked.text
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        appointment = (await session.scalars(select(Appointment))).one()
    handle = temporal_env.client.get_workflow_handle(appointment.workflow_id)

    async def running() -> bool:
        try:
            return (await handle.describe()).status is not None
        except Exception:
            return False

    await wait_for(running, "the appointment's workflow to start")

    cancel = siu("S15", "MRN-S15", "APPT-S15", start)
    cancelled = await client.post("/hl7/v2", content=cancel.encode(), headers=headers)
    repeated = await client.post("/hl7/v2", content=cancel.encode(), headers=headers)

    assert ack_code(cancelled) == ack_code(repeated) == "AA"
    assert await handle.result() == "cancelled"
    await skip_to(temporal_env, start + timedelta(hours=1))
    assert await messages(system_sessionmaker, tenant_id, str(appointment.id)) == [
        f"appointment:{appointment.id}:cancellation"
    ]
