"""Analytics endpoints: figures, periods in the tenant's time zone, 422s and tenant isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from core.database import bind_tenant
from domain.analytics.models import VoiceCall
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage
from tests.analytics.conftest import ANALYTICS, Clinic, make_clinic, now


async def get(client: httpx.AsyncClient, path: str, auth: dict, **params: object) -> dict:
    resp = await client.get(f"{ANALYTICS}{path}", params=params, headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_appointments_counts_and_rates_in_the_period(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    today = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await clinic.appointment(today, "completed", source_channel="whatsapp")
    await clinic.appointment(today - timedelta(days=1), "no_show", source_channel="web")
    await clinic.appointment(today - timedelta(days=2), "cancelled", source_channel="web")
    await clinic.appointment(today - timedelta(days=40), "completed")
    body = await get(client, "/appointments", auth, time_period="LAST_30_DAYS")
    assert (body["total"], body["completed"], body["no_show"], body["cancelled"]) == (3, 1, 1, 1)
    assert body["completion_rate"] == 0.5 and body["no_show_rate"] == 0.5
    assert body["breakdown"] is None


async def test_appointment_breakdown_and_filters(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    start = now() - timedelta(hours=2)
    await clinic.appointment(start, "booked", source_channel="whatsapp")
    await clinic.appointment(start - timedelta(days=1), "confirmed", source_channel="web")
    body = await get(client, "/appointments", auth, time_period="LAST_7_DAYS", include_breakdown="true")
    breakdown = body["breakdown"]
    assert breakdown["by_channel"] == {"whatsapp": 1, "web": 1}
    assert breakdown["by_status"]["booked"] == 1 and breakdown["by_status"]["confirmed"] == 1
    assert len(breakdown["by_day"]) == 7 and sum(d["count"] for d in breakdown["by_day"]) == 2
    assert breakdown["by_practitioner"] == [
        {"practitioner_id": str(clinic.practitioner_id), "name": "Dr. John Smith", "count": 2}
    ]
    only_web = await get(client, "/appointments", auth, time_period="LAST_7_DAYS", channel_origin="web")
    assert only_web["total"] == 1
    other = "00000000-0000-0000-0000-000000000001"
    assert (await get(client, "/appointments", auth, time_period="LAST_7_DAYS", practitioner_id=other))[
        "total"
    ] == 0


async def test_days_are_the_tenant_local_days(
    client: httpx.AsyncClient, make_tenant: Callable, headers_for: Callable, system_sessionmaker: object
) -> None:
    tenant = await make_tenant(timezone="Pacific/Kiritimati")  # UTC+14: local midnight is 10:00 UTC before
    clinic = await make_clinic(tenant, system_sessionmaker)  # type: ignore[arg-type]
    zone = ZoneInfo("Pacific/Kiritimati")
    local_today = datetime.now(zone).date()
    early = datetime.combine(local_today, time(0, 30), tzinfo=zone).astimezone(UTC)
    await clinic.appointment(early)
    body = await get(
        client, "/appointments", headers_for(tenant), time_period="TODAY", include_breakdown="true"
    )
    assert body["total"] == 1
    assert body["period"]["start_date"] == local_today.isoformat()
    assert body["breakdown"]["by_day"] == [{"date": local_today.isoformat(), "count": 1}]


async def test_custom_period(client: httpx.AsyncClient, auth: dict, clinic: Clinic) -> None:
    await clinic.appointment(datetime(2025, 1, 15, 12, tzinfo=UTC))
    body = await get(
        client, "/appointments", auth, time_period="CUSTOM", start_date="2025-01-01", end_date="2025-01-31"
    )
    assert body["total"] == 1 and body["period"]["end_date"] == "2025-01-31"


@pytest.mark.parametrize(
    "params",
    [
        {"time_period": "CUSTOM"},
        {"time_period": "CUSTOM", "start_date": "2025-01-01"},
        {"time_period": "CUSTOM", "start_date": "2025-02-01", "end_date": "2025-01-01"},
        {"time_period": "FOREVER"},
        {"time_period": "CUSTOM", "start_date": "2025-13-01", "end_date": "2025-01-01"},
    ],
)
async def test_unusable_periods_are_422(client: httpx.AsyncClient, auth: dict, params: dict) -> None:
    for path in ("/appointments", "/dashboard", "/journeys", "/communication", "/voice-calls"):
        resp = await client.get(f"{ANALYTICS}{path}", params=params, headers=auth)
        assert resp.status_code == 422, (path, resp.text)


async def test_foreign_tenant_id_is_403(client: httpx.AsyncClient, auth: dict, make_tenant: Callable) -> None:
    other = await make_tenant()
    for path in ("/appointments", "/dashboard", "/realtime"):
        resp = await client.get(f"{ANALYTICS}{path}", params={"tenant_id": str(other)}, headers=auth)
        assert resp.status_code == 403


async def test_other_tenants_rows_are_never_counted(
    client: httpx.AsyncClient, clinic: Clinic, make_tenant: Callable, headers_for: Callable
) -> None:
    await clinic.appointment(now() - timedelta(hours=1))
    await clinic.add(clinic.message("outbound", now()))
    body = await get(client, "/dashboard", headers_for(await make_tenant()), time_period="TODAY")
    assert body["appointments"]["total"] == 0
    assert body["communication"]["total"] == 0


async def test_journeys_active_overdue_completed_and_stage_times(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    journey = Journey(name="Post-op")
    await clinic.add(journey)
    t = now()
    stuck = JourneyInstance(
        journey_id=journey.id, patient_id=clinic.patient_id, started_at=t - timedelta(days=12)
    )
    done = JourneyInstance(
        journey_id=journey.id,
        patient_id=clinic.patient_id,
        status="completed",
        started_at=t - timedelta(days=3),
        completed_at=t - timedelta(days=1),
    )
    await clinic.add(stuck, done)
    await clinic.add(
        JourneyInstanceStage(
            instance_id=stuck.id,
            order_index=1,
            name="Check-in",
            status="active",
            started_at=t - timedelta(days=10),
        ),
        JourneyInstanceStage(
            instance_id=done.id,
            order_index=1,
            name="Check-in",
            status="completed",
            started_at=t - timedelta(days=3),
            completed_at=t - timedelta(days=3) + timedelta(hours=2),
        ),
    )
    body = await get(client, "/journeys", auth, time_period="LAST_7_DAYS")
    assert (body["active"], body["overdue"], body["completed"], body["started"]) == (1, 1, 1, 1)
    assert body["completion_rate"] == 1.0
    assert body["average_time_per_stage"] == [
        {
            "journey_name": "Post-op",
            "stage_name": "Check-in",
            "order_index": 1,
            "completed": 1,
            "average_seconds": 7200.0,
        }
    ]
    assert (await get(client, "/journeys", auth, overdue_after_days=30))["overdue"] == 0


async def test_communication_rates_reply_time_and_sentiment(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    t = datetime(2025, 6, 3, 9, tzinfo=UTC)
    await clinic.add(
        clinic.message("outbound", t, status="read", sent_at=t, channel="whatsapp"),
        clinic.message("outbound", t + timedelta(seconds=1), status="delivered", channel="sms"),
        clinic.message("outbound", t + timedelta(seconds=2), status="failed", channel="sms"),
        clinic.message("inbound", t + timedelta(seconds=62), "Thank you so much, that is wonderful!"),
        clinic.message("inbound", t + timedelta(minutes=30), "This is terrible, I am very angry."),
    )
    body = await get(
        client, "/communication", auth, time_period="CUSTOM", start_date="2025-06-03", end_date="2025-06-03"
    )
    assert (body["total"], body["outbound"], body["inbound"]) == (5, 3, 2)
    assert body["by_channel"] == {"whatsapp": 1, "sms": 4}
    assert body["delivery_rate"] == round(2 / 3, 4) and body["read_rate"] == 0.5
    assert body["replies"] == 1 and body["median_response_seconds"] == 60.0
    # Stored without the inbound webhook, so not scored: the request counts them and scores nothing.
    sentiment = body["sentiment"]
    assert (sentiment["scored"], sentiment["unscored"], sentiment["average_compound"]) == (0, 2, None)


def earlier_today() -> datetime:
    """A moment before now and still today (UTC, the test tenant's zone): an hour ago, or midnight in the
    first hour of the day."""
    t = now()
    return max(t - timedelta(hours=1), t.replace(hour=0, minute=0, second=0, microsecond=0))


async def test_voice_call_figures(client: httpx.AsyncClient, auth: dict, clinic: Clinic) -> None:
    t = earlier_today()

    def call(status: str, duration: int | None = None, answered: bool = False) -> VoiceCall:
        return VoiceCall(
            call_sid=f"CA{status}{t.timestamp()}{duration}",
            direction="inbound",
            status=status,
            status_rank=3,
            answered=answered,
            duration_seconds=duration,
            started_at=t,
            ended_at=t,
        )

    await clinic.add(
        call("completed", 120, True), call("completed", 5, True), call("no-answer"), call("busy")
    )
    body = await get(client, "/voice-calls", auth, time_period="TODAY")
    assert (body["total_calls"], body["answered"], body["total_duration_seconds"]) == (4, 2, 125)
    assert body["average_duration_seconds"] == 62.5 and body["median_duration_seconds"] == 62.5
    assert body["quality"] == {"completion_rate": 0.5, "short_call_rate": 0.5, "failure_rate": 0.5}
    assert body["by_direction"] == {"inbound": 4}


async def test_ticket_summary_counts_open_tickets_now_and_the_periods_tickets(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    from domain.tickets.models import Ticket

    day = datetime(2025, 2, 14, 9, tzinfo=UTC)

    def ticket(status: str, created: datetime, **fields: object) -> Ticket:
        return Ticket(title="Call back", status=status, created_at=created, **fields)

    await clinic.add(
        ticket("open", day, first_response_at=day + timedelta(minutes=10), response_breached=True),
        ticket("waiting_on_patient", day, first_response_at=day + timedelta(minutes=30)),
        ticket("resolved", day - timedelta(days=40), resolved_at=day + timedelta(hours=2)),
        ticket("closed", day - timedelta(days=40), resolved_at=day - timedelta(days=39)),
        ticket("in_progress", day + timedelta(days=3)),
    )
    body = await get(
        client, "/dashboard", auth, time_period="CUSTOM", start_date="2025-02-14", end_date="2025-02-14"
    )
    assert body["tickets"] == {
        "open": 3,
        "waiting_on_patient": 1,
        "opened": 2,
        "resolved": 1,
        "breached": 1,
        "median_first_response_seconds": 1200.0,
    }


async def test_dashboard_has_every_section(client: httpx.AsyncClient, auth: dict, clinic: Clinic) -> None:
    await clinic.appointment(earlier_today())
    body = await get(client, "/dashboard", auth, time_period="TODAY")
    assert set(body) >= {"appointments", "journeys", "communication", "voice_calls", "tickets", "period"}
    assert body["appointments"]["total"] == 1 and body["appointments"]["breakdown"] is not None
    assert body["tickets"]["open"] == 0


async def test_viewer_can_read_and_unauthenticated_cannot(
    client: httpx.AsyncClient, clinic: Clinic, headers_for: Callable
) -> None:
    assert (
        await client.get(f"{ANALYTICS}/dashboard", headers=headers_for(clinic.tenant_id, "viewer"))
    ).status_code == 200
    assert (await client.get(f"{ANALYTICS}/dashboard")).status_code == 401


async def test_realtime_without_event_stream_accept_returns_one_snapshot(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await clinic.appointment(now() + timedelta(minutes=5))
    resp = await client.get(f"{ANALYTICS}/realtime", headers=auth)
    assert resp.status_code == 200
    assert resp.json()["tenant_id"] == str(clinic.tenant_id)


async def test_realtime_accepts_the_token_as_access_token_parameter(
    client: httpx.AsyncClient, token_for: Callable, clinic: Clinic
) -> None:
    resp = await client.get(f"{ANALYTICS}/realtime", params={"access_token": token_for(clinic.tenant_id)})
    assert resp.status_code == 200
    bad = await client.get(f"{ANALYTICS}/realtime", params={"access_token": "not-a-token"})
    assert bad.status_code == 401


async def test_access_token_parameter_is_refused_elsewhere(
    client: httpx.AsyncClient, token_for: Callable, clinic: Clinic
) -> None:
    resp = await client.get(f"{ANALYTICS}/dashboard", params={"access_token": token_for(clinic.tenant_id)})
    assert resp.status_code == 401


_ = bind_tenant
