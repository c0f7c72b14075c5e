"""The daily rollups follow the application's own write paths: appointment status changes, reschedules,
cancellations and deletes through the API, message status moves through the repository's conditional
UPDATE, deletes; the figures read from them are right after each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.communications.repository import advance_status
from domain.enums import CommunicationStatus
from tests.analytics.conftest import ANALYTICS, Clinic

APPOINTMENTS = "/api/v1/prm/appointments"


def in_days(days: int, hour: int = 10) -> datetime:
    """A whole hour `days` from today (UTC)."""
    return datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)


def window(first: datetime, last: datetime) -> dict[str, str]:
    """The CUSTOM period from the day of `first` to the day of `last`."""
    return {
        "time_period": "CUSTOM",
        "start_date": first.date().isoformat(),
        "end_date": last.date().isoformat(),
    }


async def appointment_figures(client: httpx.AsyncClient, auth: dict, period: dict[str, str]) -> dict:
    resp = await client.get(
        f"{ANALYTICS}/appointments", params={**period, "include_breakdown": "true"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_appointment_figures_follow_status_changes_reschedules_and_deletes(
    client: httpx.AsyncClient, auth: dict, headers_for: Callable, clinic: Clinic
) -> None:
    first, moved = in_days(3), in_days(5)
    period = window(first, moved)
    a = await clinic.appointment(first, "booked", source_channel="web")
    b = await clinic.appointment(first + timedelta(hours=1), "booked", source_channel="phone")
    body = await appointment_figures(client, auth, period)
    assert (body["total"], body["scheduled"]) == (2, 2)

    resp = await client.patch(f"{APPOINTMENTS}/{a.id}", json={"status": "confirmed"}, headers=auth)
    assert resp.status_code == 200, resp.text
    body = await appointment_figures(client, auth, period)
    assert (body["scheduled"], body["confirmed"]) == (1, 1)

    resp = await client.patch(
        f"{APPOINTMENTS}/{a.id}",
        json={"start_time": moved.isoformat(), "end_time": (moved + timedelta(minutes=30)).isoformat()},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text
    body = await appointment_figures(client, auth, period)
    by_day = {d["date"]: d["count"] for d in body["breakdown"]["by_day"] if d["count"]}
    assert by_day == {first.date().isoformat(): 1, moved.date().isoformat(): 1}

    resp = await client.post(
        f"{APPOINTMENTS}/{b.id}/cancel", params={"notify_patient": "false"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    body = await appointment_figures(client, auth, period)
    assert (body["total"], body["cancelled"], body["cancellation_rate"]) == (2, 1, 0.5)
    assert body["breakdown"]["by_channel"] == {"web": 1, "phone": 1}

    resp = await client.delete(f"{APPOINTMENTS}/{b.id}", headers=headers_for(clinic.tenant_id, "admin"))
    assert resp.status_code == 204, resp.text
    body = await appointment_figures(client, auth, period)
    assert (body["total"], body["cancelled"], body["confirmed"]) == (1, 0, 1)
    assert body["breakdown"]["by_channel"] == {"web": 1}
    assert [p["count"] for p in body["breakdown"]["by_practitioner"]] == [1]


async def test_practitioner_and_channel_filters_give_the_same_counts_as_the_breakdown(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    start = in_days(2)
    await clinic.appointment(start, "completed", source_channel="web")
    await clinic.appointment(start + timedelta(hours=1), "no_show", source_channel="web")
    await clinic.appointment(start + timedelta(hours=2), "booked", source_channel="sms")
    period = window(start, start)
    for filters, expected in [
        ({"channel_origin": "web"}, 2),
        ({"channel_origin": "web", "include_breakdown": "true"}, 2),
        ({"practitioner_id": str(clinic.practitioner_id)}, 3),
        ({"practitioner_id": str(clinic.practitioner_id), "channel_origin": "sms"}, 1),
    ]:
        resp = await client.get(f"{ANALYTICS}/appointments", params={**period, **filters}, headers=auth)
        assert resp.json()["total"] == expected, filters
    web = (
        await client.get(
            f"{ANALYTICS}/appointments", params={**period, "channel_origin": "web"}, headers=auth
        )
    ).json()
    assert (web["completed"], web["no_show"], web["completion_rate"]) == (1, 1, 0.5)


async def test_message_figures_follow_the_repositorys_status_updates_and_deletes(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    t = datetime(2025, 4, 2, 12, tzinfo=UTC)
    period = window(t, t)
    first = clinic.message("outbound", t, status="queued", channel="whatsapp")
    second = clinic.message("outbound", t + timedelta(minutes=1), status="queued", channel="sms")
    await clinic.add(first, second)
    async with clinic.sessionmaker() as session:
        bind_tenant(session, clinic.tenant_id)
        for message, status in [
            (first, CommunicationStatus.SENT),
            (first, CommunicationStatus.DELIVERED),
            (first, CommunicationStatus.READ),
            (first, CommunicationStatus.SENT),  # out of order: refused, nothing moves
            (second, CommunicationStatus.FAILED),
        ]:
            await advance_status(session, message.id, status, at=t + timedelta(minutes=2))
        await session.commit()
    resp = await client.get(f"{ANALYTICS}/communication", params=period, headers=auth)
    body = resp.json()
    assert body["by_status"] == {"read": 1, "failed": 1}
    assert (body["delivery_rate"], body["read_rate"]) == (0.5, 1.0)

    await clinic.execute(delete(Communication).where(Communication.id == second.id))
    body = (await client.get(f"{ANALYTICS}/communication", params=period, headers=auth)).json()
    assert (body["total"], body["by_status"], body["by_channel"]) == (1, {"read": 1}, {"whatsapp": 1})


async def test_the_realtime_snapshot_counts_today_from_the_rollups(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await clinic.appointment(midnight + timedelta(minutes=5), "confirmed")
    await clinic.appointment(midnight + timedelta(days=1, minutes=5), "confirmed")  # tomorrow
    await clinic.add(
        clinic.message("outbound", now), clinic.message("inbound", midnight - timedelta(seconds=1))
    )
    snapshot = (await client.get(f"{ANALYTICS}/realtime", headers=auth)).json()
    assert (snapshot["appointments_today"], snapshot["appointments_by_status"]) == (1, {"confirmed": 1})
    assert snapshot["messages_today"] == 1
