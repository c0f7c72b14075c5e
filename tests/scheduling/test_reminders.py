"""Reminders follow the appointment: one workflow per appointment, on the time-skipping test server."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import datetime, timedelta

import httpx

from core.database import bind_tenant
from tests.polling import eventually
from tests.scheduling.reminder_support import BASE, book_at, messages, server_now, skip_to
from workflows.appointments import AppointmentWorkflow

POLL_SECONDS = 10.0
wait_for = functools.partial(eventually, within=POLL_SECONDS)


async def test_booking_sends_the_24h_and_2h_reminders_and_a_reschedule_moves_them(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=3)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await wait_for(lambda: _running(handle), "the workflow to start")

    await skip_to(temporal_env, start - timedelta(hours=24) + timedelta(minutes=1))
    old_24h = f"appointment:{appointment['id']}:reminder:1440:{start.isoformat()}"

    async def first_sent() -> bool:
        return await messages(system_sessionmaker, tenant_id, appointment["id"]) == [old_24h]

    await wait_for(first_sent, "the 24 h reminder")

    new_start = start + timedelta(days=2)
    resp = await client.patch(
        f"{BASE}/{appointment['id']}",
        json={
            "start_time": new_start.isoformat(),
            "end_time": (new_start + timedelta(minutes=30)).isoformat(),
        },
        headers=auth,
    )
    assert resp.status_code == 200, resp.text

    async def moved() -> bool:
        state = await handle.query(AppointmentWorkflow.state)
        return state.start_time == new_start.isoformat()

    await wait_for(moved, "the reschedule to reach the workflow")
    await skip_to(temporal_env, start + timedelta(minutes=1))  # past the old 2 h reminder: nothing sent
    await asyncio.sleep(0.2)
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == [old_24h]

    expected = [
        old_24h,
        f"appointment:{appointment['id']}:reminder:1440:{new_start.isoformat()}",
        f"appointment:{appointment['id']}:reminder:120:{new_start.isoformat()}",
    ]
    await skip_to(temporal_env, new_start - timedelta(hours=2) + timedelta(minutes=1))

    async def all_sent() -> bool:
        return await messages(system_sessionmaker, tenant_id, appointment["id"]) == expected

    await wait_for(all_sent, "the moved reminders")

    for status in ("checked_in", "completed"):
        assert (
            await client.patch(f"{BASE}/{appointment['id']}", json={"status": status}, headers=auth)
        ).status_code == 200
    assert await handle.result() == "completed"
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == expected


async def _running(handle) -> bool:
    try:
        await handle.describe()
        return True
    except Exception:
        return False


async def test_cancellation_stops_reminders_and_sends_one_cancellation_message(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=3)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await wait_for(lambda: _running(handle), "the workflow to start")

    resp = await client.post(f"{BASE}/{appointment['id']}/cancel", headers=auth)
    assert resp.status_code == 200
    assert await handle.result() == "cancelled"
    await skip_to(temporal_env, start + timedelta(hours=1))
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == [
        f"appointment:{appointment['id']}:cancellation"
    ]


async def test_cancellation_without_notify_sends_nothing(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=3)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await wait_for(lambda: _running(handle), "the workflow to start")
    resp = await client.post(
        f"{BASE}/{appointment['id']}/cancel", params={"notify_patient": False}, headers=auth
    )
    assert resp.status_code == 200
    assert await handle.result() == "cancelled"
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == []


async def test_deleting_a_booked_appointment_stops_its_reminders_and_sends_nothing(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(days=3)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await wait_for(lambda: _running(handle), "the workflow to start")

    assert (await client.delete(f"{BASE}/{appointment['id']}", headers=auth)).status_code == 204
    assert await handle.result() == "booked"  # ended by the deletion, as it stood
    await skip_to(temporal_env, start + timedelta(hours=1))
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == []


async def test_booking_inside_the_24h_window_sends_only_the_2h_reminder_and_no_show_ends_it(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient, practitioner = await make_patient(), await make_practitioner()
    start = await server_now(temporal_env) + timedelta(hours=5)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await wait_for(lambda: _running(handle), "the workflow to start")
    await skip_to(temporal_env, start - timedelta(minutes=100))
    only_2h = [f"appointment:{appointment['id']}:reminder:120:{start.isoformat()}"]

    async def sent() -> bool:
        return await messages(system_sessionmaker, tenant_id, appointment["id"]) == only_2h

    await wait_for(sent, "the 2 h reminder")
    resp = await client.patch(f"{BASE}/{appointment['id']}", json={"status": "no_show"}, headers=auth)
    assert resp.status_code == 200
    assert await handle.result() == "no_show"
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == only_2h


async def test_a_repeated_reminder_is_recorded_once(
    tenant_id, system_sessionmaker, make_patient, make_practitioner, client, auth
) -> None:
    from domain.scheduling import notifications

    patient, practitioner = await make_patient(), await make_practitioner()
    start = datetime.fromisoformat("2031-01-01T10:00:00+00:00")
    appointment = await book_at(client, auth, patient, practitioner, start)
    results = []
    for _ in range(2):
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant_id)
            results.append(
                await notifications.send_reminder(
                    session,
                    appointment_id=uuid.UUID(appointment["id"]),
                    offset_minutes=1440,
                    planned_start=start.isoformat(),
                )
            )
            await session.commit()
    assert results == [True, False]
    assert len(await messages(system_sessionmaker, tenant_id, appointment["id"])) == 1
