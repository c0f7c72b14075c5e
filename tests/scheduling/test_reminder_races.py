"""Reminders against reschedules: a reminder is for the time it was planned for, checked under the
appointment's lock, superseded when the time moves before it goes out, and the patient is reminded of
the new time; a reminder that can never be sent fails once, with its reason, instead of retrying."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, text, update

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.scheduling import notifications
from domain.scheduling.models import Appointment
from tests.polling import eventually
from tests.scheduling.conftest import API
from tests.scheduling.reminder_support import book_at, messages, server_now, skip_to
from workflows.appointments import AppointmentWorkflow

BASE = f"{API}/appointments"
wait_for = functools.partial(eventually, within=10.0)


def reminder(appointment: dict, offset: int, start: datetime) -> str:
    return f"appointment:{appointment['id']}:reminder:{offset}:{start.isoformat()}"


async def _statuses(sessionmaker, tenant_id, appointment: dict) -> dict[str, tuple[str, str | None]]:
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.execute(
            select(Communication.idempotency_key, Communication.status, Communication.error_code).where(
                Communication.appointment_id == uuid.UUID(appointment["id"])
            )
        )
        return {key: (status, code) for key, status, code in rows}


async def test_a_reminder_send_waits_for_a_reschedule_in_flight_and_then_skips_the_old_time(
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
    moved = start + timedelta(days=1)

    async def send_old_reminder() -> bool:
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant_id)
            sent = await notifications.send_reminder(
                session,
                appointment_id=uuid.UUID(appointment["id"]),
                offset_minutes=1440,
                planned_start=start.isoformat(),
            )
            await session.commit()
            return sent

    async with system_sessionmaker() as rescheduling:  # a reschedule that has written but not committed
        bind_tenant(rescheduling, tenant_id)
        await rescheduling.execute(
            update(Appointment)
            .where(Appointment.id == uuid.UUID(appointment["id"]))
            .values(start_time=moved, end_time=moved + timedelta(minutes=30))
        )
        sending = asyncio.create_task(send_old_reminder())

        async def send_waits_for_the_lock() -> bool:
            async with system_sessionmaker() as observer:  # a fresh snapshot of the server's activity
                waiting = await observer.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            return bool(waiting)

        await wait_for(send_waits_for_the_lock, "the reminder to wait for the appointment's lock")
        assert not sending.done()
        await rescheduling.commit()
    assert await sending is False  # it saw the new time: the old one is not sent
    assert await messages(system_sessionmaker, tenant_id, appointment["id"]) == []


async def test_a_reschedule_supersedes_a_reminder_of_the_old_time_that_has_not_gone_out(
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
    async with system_sessionmaker() as session:  # recorded, waiting to go out (e.g. quiet hours)
        bind_tenant(session, tenant_id)
        for offset in (1440, 120):
            assert await notifications.send_reminder(
                session,
                appointment_id=uuid.UUID(appointment["id"]),
                offset_minutes=offset,
                planned_start=start.isoformat(),
            )
        await session.execute(  # ... and one of them already went out
            update(Communication)
            .where(Communication.idempotency_key == reminder(appointment, 120, start))
            .values(status="sent")
        )
        await session.commit()

    moved = start + timedelta(days=1)
    resp = await client.patch(
        f"{BASE}/{appointment['id']}",
        json={"start_time": moved.isoformat(), "end_time": (moved + timedelta(minutes=30)).isoformat()},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text
    assert await _statuses(system_sessionmaker, tenant_id, appointment) == {
        reminder(appointment, 1440, start): ("failed", "superseded"),
        reminder(appointment, 120, start): ("sent", None),
    }


async def test_a_patient_reminded_of_a_time_that_moved_earlier_is_reminded_of_the_new_time_at_once(
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
    start = await server_now(temporal_env) + timedelta(hours=3)  # only the 2 h reminder is ahead
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await skip_to(temporal_env, start - timedelta(hours=2) + timedelta(minutes=1))

    async def reminded() -> bool:
        return await messages(system_sessionmaker, tenant_id, appointment["id"]) == [
            reminder(appointment, 120, start)
        ]

    await wait_for(reminded, "the 2 h reminder of the first time")

    earlier = start - timedelta(minutes=30)  # its 2 h reminder time has passed already
    resp = await client.patch(
        f"{BASE}/{appointment['id']}",
        json={"start_time": earlier.isoformat(), "end_time": (earlier + timedelta(minutes=30)).isoformat()},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text

    async def reminded_again() -> bool:
        return await messages(system_sessionmaker, tenant_id, appointment["id"]) == [
            reminder(appointment, 120, start),
            reminder(appointment, 120, earlier),
        ]

    await wait_for(reminded_again, "a reminder of the new time")

    async def nothing_more_due() -> bool:
        state = await handle.query(AppointmentWorkflow.state)
        return state.start_time == earlier.isoformat() and state.next_reminder_at is None

    await wait_for(nothing_more_due, "the workflow to have nothing more before the appointment")
    await skip_to(temporal_env, earlier + timedelta(minutes=31))
    assert await handle.result() == "ended"
    assert len(await messages(system_sessionmaker, tenant_id, appointment["id"])) == 2


async def test_a_reminder_for_a_patient_with_no_contact_details_fails_once_with_its_reason(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> None:
    patient = await make_patient(phone_primary=None, email_primary=None, preferred_channel=None)
    practitioner = await make_practitioner()
    start = await server_now(temporal_env) + timedelta(hours=3)
    appointment = await book_at(client, auth, patient, practitioner, start)
    handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
    await skip_to(temporal_env, start - timedelta(hours=2) + timedelta(minutes=1))

    async def failed() -> list[str]:
        return (await handle.query(AppointmentWorkflow.state)).failed

    await wait_for(failed, "the reminder to fail")
    [reason] = await failed()
    assert reason.startswith(f"120:{start.isoformat()}: ")
    assert "no email address" in reason  # why, in words a coordinator reads; no PHI
    description = await handle.describe()
    assert not description.raw_description.pending_activities  # not retrying
    await skip_to(temporal_env, start + timedelta(minutes=31))
    assert await handle.result() == "ended"
